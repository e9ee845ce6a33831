/**
 * `keyhold agent`: inside a workload pod, logs in with the pod's projected service-account token
 * and renders secrets into files (init: once; sidecar: then keeps them fresh), or resolves
 * `keyhold:<path>#<field>` environment values for a child process (exec). Depends on the client
 * library only: no server internals, no native modules.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyholdApiError, KeyholdClient } from '../client/client.js';
import { envReference, renderSecret, renderTemplate, templateRefs, type SecretRef } from '../client/secret-ref.js';

export interface AgentLogin {
  address: string;
  role: string;
  /** The projected service-account token file (re-read at every login: the kubelet rotates it). */
  jwtFile: string;
}

/** One file: a secret reference (one field, or the whole secret as JSON), or a template. */
export interface FileSecret {
  name: string;
  ref?: SecretRef;
  template?: string;
  mode: number;
}

export class AgentError extends Error {
  override readonly name = 'AgentError';

  /** `apiCode`: the server's error code, when the server refused. */
  constructor(message: string, readonly apiCode?: string) {
    super(message);
  }
}

/** A logged-in client, and when to log in again: after two thirds of the keyhold token's TTL. */
export interface AgentSession {
  client: KeyholdClient;
  renewAtMs: number;
}

/** How long a login keeps retrying while the server's pod watch is not synced (503 ERR_KUBERNETES_NOT_SYNCED), and how often. */
const NOT_SYNCED_PATIENCE_MS = 60_000;
const NOT_SYNCED_RETRY_MS = 5_000;

/** Logs in and returns a client holding the keyhold token. Denials keep the server's reason. */
export async function login(options: AgentLogin): Promise<AgentSession> {
  let jwt: string;
  try {
    jwt = readFileSync(options.jwtFile, 'utf8').trim();
  } catch (err) {
    throw new AgentError(`cannot read the service-account token ${options.jwtFile}: ${(err as Error).message}`);
  }
  const client = new KeyholdClient({ address: options.address, timeoutMs: 10_000 });
  const waitUntil = Date.now() + NOT_SYNCED_PATIENCE_MS;
  for (;;) {
    try {
      const startedAt = Date.now();
      const result = await client.kubernetesLogin(options.role, jwt);
      return { client: client.withToken(result.token), renewAtMs: startedAt + (result.ttl * 1000 * 2) / 3 };
    } catch (err) {
      // The server cannot vouch for pods right now (its watch is re-listing): wait it out here
      // rather than exit and sit out the kubelet's restart back-off.
      if (err instanceof KeyholdApiError && err.code === 'ERR_KUBERNETES_NOT_SYNCED' && Date.now() + NOT_SYNCED_RETRY_MS < waitUntil) {
        process.stderr.write(`keyhold agent: ${err.message}; retrying in ${NOT_SYNCED_RETRY_MS / 1000} s\n`);
        await sleep(NOT_SYNCED_RETRY_MS);
        continue;
      }
      if (err instanceof KeyholdApiError) throw new AgentError(`${err.code}: ${err.message}`, err.code);
      throw err;
    }
  }
}

/**
 * Reads secrets for one pass (a render, or an exec): each path is read once however many files or
 * variables use it, and server refusals become AgentErrors naming the path.
 */
function secretReader(client: KeyholdClient): (path: string) => Promise<Record<string, unknown>> {
  const reads = new Map<string, Promise<Record<string, unknown>>>();
  return (path) => {
    let read = reads.get(path);
    if (!read) {
      read = client.getSecret(path).then((r) => r.data, (err: unknown) => {
        if (err instanceof KeyholdApiError) throw new AgentError(`reading ${path}: ${err.code}: ${err.message}`, err.code);
        throw err;
      });
      reads.set(path, read);
    }
    return read;
  };
}

/** Writes atomically: a temp file in the same directory with the final mode, fsync'd, then renamed over. */
export function writeAtomically(dir: string, name: string, content: string, mode: number): void {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name) || name.startsWith('.')) throw new AgentError(`invalid file name ${JSON.stringify(name)}`);
  const target = join(dir, name);
  const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(temp);
    throw err;
  }
  closeSync(fd);
  renameSync(temp, target);
}

async function renderOne(read: (path: string) => Promise<Record<string, unknown>>, file: FileSecret): Promise<string> {
  try {
    if (file.ref) return renderSecret(await read(file.ref.path), file.ref);
    const template = file.template ?? '';
    const paths = [...new Set(templateRefs(template).map((r) => r.path))];
    const secrets = new Map(await Promise.all(paths.map(async (path) => [path, await read(path)] as const)));
    return renderTemplate(template, secrets);
  } catch (err) {
    if (err instanceof AgentError) throw new AgentError(`${file.name}: ${err.message}`, err.apiCode);
    throw new AgentError(`${file.name}: ${(err as Error).message}`);
  }
}

/** Renders every file into dir; returns the names whose content changed. */
export async function renderFiles(client: KeyholdClient, dir: string, secrets: FileSecret[], previous = new Map<string, string>()): Promise<string[]> {
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const read = secretReader(client);
  const rendered = await Promise.all(secrets.map(async (s) => [s, await renderOne(read, s)] as const));
  const changed: string[] = [];
  for (const [secret, content] of rendered) {
    if (previous.get(secret.name) === content) continue;
    writeAtomically(dir, secret.name, content, secret.mode);
    previous.set(secret.name, content);
    changed.push(secret.name);
  }
  return changed;
}

/** Resolves every `keyhold:<path>#<field>` value of env; other values pass through. */
export async function resolveEnv(client: KeyholdClient, env: NodeJS.ProcessEnv): Promise<{ env: NodeJS.ProcessEnv; resolved: string[] }> {
  const out: NodeJS.ProcessEnv = { ...env };
  const resolved: string[] = [];
  const read = secretReader(client);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    try {
      const ref = envReference(value);
      if (!ref) continue;
      out[name] = renderSecret(await read(ref.path), ref);
    } catch (err) {
      throw new AgentError(`${name}: ${(err as Error).message}`);
    }
    resolved.push(name);
  }
  return { env: out, resolved };
}

/**
 * Runs the command with the resolved environment. Node cannot replace its own process image, so
 * the agent stays as a thin parent: it forwards signals and exits with the child's status.
 */
export function runChild(command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [file, ...args] = command;
  if (!file) throw new AgentError('agent exec needs a command after --');
  const child = spawn(file, args, { env, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) process.on(signal, forward(signal));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new AgentError(`cannot start ${file}: ${err.message}`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 1) : 1)));
  });
}

