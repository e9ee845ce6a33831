import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findSoftHsmModule } from '../../src/hsm/softhsm.js';
import { spawnUntilReady, type WatchedProcess } from './processes.js';
import { tempDir } from './temp.js';

/** dist/src/cli/keyhold.cjs (the `keyhold` executable), resolved from this compiled file (dist/test/helpers/server.js). */
export const CLI = resolve(fileURLToPath(import.meta.url), '../../../src/cli/keyhold.cjs');

// tempDir lives in temp.ts; re-exported because most tests take it from here with the server.
export { tempDir };

export interface DevServer {
  process: ChildProcess;
  address: string;
  dataDir: string;
  rootToken: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function running(started: WatchedProcess, dataDir: string): DevServer {
  const tokenFile = join(dataDir, 'root-token');
  return {
    process: started.child,
    address: started.ready[1] as string,
    dataDir,
    rootToken: existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '',
    output: started.output,
    stop: started.stop,
  };
}

/** The CLI with `args`, until its output matches `ready` (group 1: the address it serves on). */
const spawnUntilServing = (args: string[], env: NodeJS.ProcessEnv, ready: RegExp) =>
  spawnUntilReady(`keyhold ${args[0]}`, process.execPath, [CLI, ...args], { ready, env });

/**
 * Runs `keyhold dev` as a real child process on a free loopback port and waits until it serves.
 * Rejects with the process output if it exits first.
 */
export async function startDev(dataDir = tempDir(), env: NodeJS.ProcessEnv = {}, extraArgs: string[] = []): Promise<DevServer> {
  return running(await spawnUntilServing(['dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], env, /listening on (http:\/\/[\d.]+:\d+)/), dataDir);
}

/**
 * A server config for the data dir of a `keyhold dev` (its SoftHSM token, store and audit log),
 * for `keyhold server --config` with settings dev has no flags for. `extra` is merged on top.
 */
export function devServerConfig(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: join(dataDir, 'keyhold.db') } },
    hsm: { module: findSoftHsmModule(), tokenLabel: 'keyhold-dev', pinFile: join(dataDir, 'hsm-pin') },
    audit: { path: join(dataDir, 'audit.log') },
    ...extra,
  };
}

/**
 * Runs `keyhold server --config FILE` and waits until it serves. `dataDir`: where the root token
 * of an earlier `keyhold dev` is (for `rootToken`); pass SOFTHSM2_CONF in `env` for a dev token.
 */
export async function startServer(configFile: string, env: NodeJS.ProcessEnv = {}, dataDir = dirname(configFile), extraArgs: string[] = []): Promise<DevServer> {
  return running(await spawnUntilServing(['server', '--config', configFile, ...extraArgs], env, /serving on (http:\/\/[\d.]+:\d+)/), dataDir);
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
  type: 'request' | 'response';
  requestId: string;
  path: string;
  operation: string;
  outcome?: { status: number; code?: string };
  fields?: Record<string, string>;
  actor?: { accessor?: string; selectors?: string[]; policies?: string[]; tokenId?: string };
}

/** The audit records of a `keyhold dev` data dir (or of the audit file `file`), in order. */
export function auditRecords(dataDir: string, file = join(dataDir, 'audit.log')): AuditLine[] {
  return readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditLine);
}

/**
 * Checks that the login outcome records appended since `before` are exactly `expected`, in order:
 * one per refused login, each with its status and a reason matching its pattern. (A login that ran
 * also has a write-ahead request record before it, without an outcome.)
 */
export function assertLoginAudit(dataDir: string, before: number, expected: Array<{ name: string; status: number; reason?: RegExp }>): void {
  const added = auditRecords(dataDir).slice(before).filter((e) => e.operation === 'auth.kubernetes.login' && e.type === 'response');
  if (added.length !== expected.length) throw new Error(`expected ${expected.length} login audit records, found ${added.length}`);
  expected.forEach((want, i) => {
    const got = added[i] as AuditLine;
    if (got.outcome?.status !== want.status) throw new Error(`audit record ${i} ("${want.name}"): status ${got.outcome?.status}, expected ${want.status}`);
    if (want.reason && !want.reason.test(got.fields?.reason ?? '')) throw new Error(`audit record ${i} ("${want.name}"): reason ${JSON.stringify(got.fields?.reason)} does not match ${want.reason}`);
  });
}
