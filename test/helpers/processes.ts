/** What the helpers that run external processes (kube-apiserver, etcd, docker-registry) share. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { pollUntil, type PollOptions } from './wait.js';

// Children still running when the test process ends (a failed assertion before stop(), a runner
// timeout) would hold ports and temp dirs forever: kill them on the way out.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** Kills the child when this process exits, however it exits, unless it has exited first. */
export function killOnExit(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        killAll();
        // Keep the default (terminate) unless someone else handles the signal.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
    }
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

// The kernel hands out ephemeral ports (ip_local_port_range, 32768-60999 on Linux) to every
// outbound connection. A port picked there and released for a child to bind can be taken by any
// client socket in the meantime (CI saw kube-apiserver fail with "address already in use"), and a
// server restarted on its old port (PostgreSQL, p11-kit outages) can lose it the same way. So the
// helpers pick below that range, where only an explicit bind can take a port.
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 12_000) return low;
  } catch { /* not Linux: fall through */ }
  return 32_768;
}
const PICK_LOW = 10_000;

function tryListen(server: Server, port: number): Promise<boolean> {
  return new Promise((res) => {
    server.once('error', () => res(false));
    server.listen(port, '127.0.0.1', () => res(true));
  });
}

/**
 * Free loopback ports outside the ephemeral range, all held open together so that no two are the
 * same, and chosen at random so that parallel test processes rarely try the same one.
 */
export async function freePorts(count: number): Promise<number[]> {
  const high = ephemeralLow();
  const servers: Server[] = [];
  try {
    for (let attempts = 0; servers.length < count; attempts++) {
      if (attempts > 1_000) throw new Error(`no ${count} free loopback ports in ${PICK_LOW}-${high - 1}`);
      const port = PICK_LOW + Math.floor(Math.random() * (high - PICK_LOW));
      if (servers.some((s) => (s.address() as AddressInfo).port === port)) continue;
      const server = createServer();
      if (await tryListen(server, port)) servers.push(server);
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  }
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 60): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `probe` until it returns true while `child` runs: fails at once if the child exits, with
 * `options.detail()` (its log) then and on timeout. A probe that throws counts as not ready yet.
 */
export async function waitForProcess(what: string, child: ChildProcess, probe: () => Promise<boolean>, options: PollOptions = {}): Promise<void> {
  const detail = options.detail ?? (() => '');
  await pollUntil(`${what} to be ready`, async () => {
    if (exited(child)) throw new Error(`${what}: process exited (${child.exitCode ?? child.signalCode}):\n${detail()}`);
    return probe().catch(() => false);
  }, { ...options, detail });
}

export interface WatchedProcess {
  child: ChildProcess;
  /** The match of `ready` in the output. */
  ready: RegExpExecArray;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGTERM by default) unless it has exited, and resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Spawns `command args` (with `env` over this process's environment), collects its stdout and
 * stderr together, and resolves once that output matches `ready`. Rejects with the output if the
 * process exits first; after `timeoutMs` (30 s) SIGKILLs it and rejects. `name` is for messages.
 */
export async function spawnUntilReady(name: string, command: string, args: string[], options: { ready: RegExp; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<WatchedProcess> {
  const { ready, timeoutMs = 30_000 } = options;
  const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exitedWith = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const match = await new Promise<RegExpExecArray>((res, rej) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`${name} did not start in ${timeoutMs / 1000} s:\n${output}`)); }, timeoutMs);
    const collect = (d: Buffer) => {
      output += d.toString();
      const found = ready.exec(output);
      if (found) { clearTimeout(timer); res(found); }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (err) => { clearTimeout(timer); rej(err); });
    void exitedWith.then((code) => { clearTimeout(timer); rej(new Error(`${name} exited with ${code}:\n${output}`)); });
  });
  return {
    child,
    ready: match,
    output: () => output,
    exited: exitedWith,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exited(child)) return child.exitCode;
      child.kill(signal);
      return exitedWith;
    },
  };
}

export const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

const builds = new Map<string, Promise<string>>();

/**
 * The directory of binaries a scripts/*-build.sh script makes: `envVar` when scripts/test.sh set
 * it (checked to hold every name), else the script is run once per process (the first build takes
 * minutes, so its progress goes to stderr) and prints the directory. A failed build is forgotten,
 * so it does not poison every later test in the process.
 */
export function builtBinaries(script: string, envVar: string, names: string[]): Promise<string> {
  let build = builds.get(script);
  if (!build) {
    build = (async () => {
      const fromEnv = process.env[envVar];
      if (fromEnv) {
        for (const name of names) {
          if (!existsSync(join(fromEnv, name))) throw new Error(`${envVar}=${fromEnv} has no ${name}; run scripts/${basename(script)}`);
        }
        return fromEnv;
      }
      const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      const code = await new Promise<number | null>((res, rej) => { child.once('error', rej); child.once('exit', res); });
      if (code !== 0) throw new Error(`scripts/${basename(script)} failed with exit code ${code}`);
      return out.trim();
    })();
    builds.set(script, build);
    build.catch(() => builds.delete(script));
  }
  return build;
}
