import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/src/cli/keyhold.cjs (the `keyhold` executable), resolved from this compiled file (dist/test/helpers/server.js). */
export const CLI = resolve(fileURLToPath(import.meta.url), '../../../src/cli/keyhold.cjs');

export function tempDir(prefix = 'keyhold-'): string {
  return mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), prefix));
}

export interface DevServer {
  process: ChildProcess;
  address: string;
  dataDir: string;
  rootToken: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `keyhold dev` as a real child process on a free loopback port and waits until it serves.
 * Rejects with the process output if it exits first.
 */
export async function startDev(dataDir = tempDir(), env: NodeJS.ProcessEnv = {}, extraArgs: string[] = []): Promise<DevServer> {
  const child = spawn(process.execPath, [CLI, 'dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const address = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`keyhold dev did not start in 30 s:\n${output}`)), 30_000);
    const check = () => {
      const match = /listening on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (match) { clearTimeout(timer); res(match[1] as string); }
    };
    child.stderr?.on('data', check);
    void exited.then((code) => { clearTimeout(timer); rej(new Error(`keyhold dev exited with ${code}:\n${output}`)); });
  });
  const { readFileSync } = await import('node:fs');
  return {
    process: child,
    address,
    dataDir,
    rootToken: readFileSync(join(dataDir, 'root-token'), 'utf8').trim(),
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** Starts `keyhold server --config FILE`, waits for "serving on", returns its address and a stop(). */
export async function startServer(configFile: string, env: NodeJS.ProcessEnv, extraArgs: string[] = []): Promise<{ address: string; output: () => string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'server', '--config', configFile, ...extraArgs], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const address = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`keyhold server did not start in 30 s:\n${output}`)); }, 30_000);
    child.stderr.on('data', () => {
      const match = /serving on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (match) { clearTimeout(timer); res(match[1] as string); }
    });
    void exited.then((code) => { clearTimeout(timer); rej(new Error(`keyhold server exited with ${code}:\n${output}`)); });
  });
  return {
    address,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A minimal JSON HTTP call for tests. */
export async function call(address: string, method: string, path: string, token?: string, body?: unknown, rawBody?: string): Promise<{ status: number; body: any; text: string }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined || rawBody !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(address + path, { method, headers, body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await response.text();
  let parsed: any;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: response.status, body: parsed, text };
}

export interface AuditLine {
  operation: string;
  outcome?: { status: number; code?: string };
  fields?: Record<string, string>;
  actor?: { selectors?: string[]; policies?: string[]; tokenId?: string };
}

/** The audit records of a `keyhold dev` data dir, in order. */
export function auditRecords(dataDir: string): AuditLine[] {
  return readFileSync(join(dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditLine);
}

/**
 * Checks that the login records appended since `before` are exactly `expected`, in order: one
 * per refused login, each with its status and a reason matching its pattern.
 */
export function assertLoginAudit(dataDir: string, before: number, expected: Array<{ name: string; status: number; reason?: RegExp }>): void {
  const added = auditRecords(dataDir).slice(before).filter((e) => e.operation === 'auth.kubernetes.login');
  if (added.length !== expected.length) throw new Error(`expected ${expected.length} login audit records, found ${added.length}`);
  expected.forEach((want, i) => {
    const got = added[i] as AuditLine;
    if (got.outcome?.status !== want.status) throw new Error(`audit record ${i} ("${want.name}"): status ${got.outcome?.status}, expected ${want.status}`);
    if (want.reason && !want.reason.test(got.fields?.reason ?? '')) throw new Error(`audit record ${i} ("${want.name}"): reason ${JSON.stringify(got.fields?.reason)} does not match ${want.reason}`);
  });
}
