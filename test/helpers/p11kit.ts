/**
 * A real network-HSM fleet for tests: `p11-kit server` processes in front of one SoftHSM token
 * directory (../shared/reference/pkcs11-remote.md). Each member listens on its own unix socket;
 * SoftHSM's file store is shared, so every member sees the same objects, like an HSM cluster that
 * replicates. A member is killed by its whole process group (the server forks one p11-kit-remote
 * per client connection; killing only the listener would leave open sessions working).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, openSync, closeSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { HsmConfig } from '../../src/hsm/config.js';
import { makeSoftHsmToken, type SoftHsmTestToken } from './softhsm.js';
import { exited, killOnExit, tail, waitForProcess } from './processes.js';

/** Debian's p11-kit client module: PKCS#11 over the p11-kit RPC protocol to P11_KIT_SERVER_ADDRESS. */
export const P11KIT_CLIENT_MODULE_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so',
  '/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so',
  '/usr/lib/pkcs11/p11-kit-client.so',
];

export function p11KitClientModule(): string {
  const found = P11KIT_CLIENT_MODULE_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new Error('p11-kit-client.so not found: scripts/setup.sh installs p11-kit-modules');
  return found;
}

export interface P11KitMember {
  readonly name: string;
  readonly socket: string;
  /** What P11_KIT_SERVER_ADDRESS must say to reach this member. */
  readonly address: string;
  /**
   * A private copy of the client module for this member: one process can reach two servers only
   * through two module files, because the module reads P11_KIT_SERVER_ADDRESS at C_Initialize and
   * a path dlopen()ed twice is one library.
   */
  readonly module: string;
  /** HsmConfig for this member alone (PIN from the token's file). `env` is set on the config for adapters that take it. */
  readonly config: HsmConfig & { env: Record<string, string> };
  readonly running: boolean;
  readonly pid: number | undefined;
  start(): Promise<void>;
  /** SIGKILL to the member's whole process group: a real outage. */
  kill(): Promise<void>;
}

export interface P11KitFleet {
  readonly token: SoftHsmTestToken;
  readonly members: readonly P11KitMember[];
  /** Adds a member over the same token (a cluster growing); started. */
  addMember(name?: string): Promise<P11KitMember>;
  stop(): Promise<void>;
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

class Member implements P11KitMember {
  private child: ChildProcess | undefined;
  readonly socket: string;
  readonly address: string;
  readonly module: string;
  readonly config: HsmConfig & { env: Record<string, string> };
  private readonly log: string;

  constructor(readonly name: string, private readonly token: SoftHsmTestToken) {
    this.socket = join(token.dir, `p11kit-${name}.sock`);
    this.address = `unix:path=${this.socket}`;
    this.module = join(token.dir, `p11-kit-client-${name}.so`);
    copyFileSync(p11KitClientModule(), this.module);
    this.log = join(token.dir, `p11kit-${name}.log`);
    this.config = { module: this.module, tokenLabel: token.label, pinFile: token.pinFile, env: { P11_KIT_SERVER_ADDRESS: this.address } };
  }

  get running(): boolean {
    return this.child !== undefined && !exited(this.child);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.running) return;
    rmSync(this.socket, { force: true });
    const out = openSync(this.log, 'a');
    // detached: a new session and process group, so kill() reaches the forked p11-kit-remote children.
    const child = spawn('p11-kit', ['server', '-f', '-n', this.socket, '--provider', this.token.module, `pkcs11:token=${this.token.label}`], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, SOFTHSM2_CONF: this.token.confPath },
    });
    closeSync(out);
    killOnExit(child);
    this.child = child;
    try {
      await waitForProcess(`p11-kit server ${this.name}`, child, async () => existsSync(this.socket) && (await canConnect(this.socket)), { timeoutMs: 15_000, intervalMs: 50, detail: () => tail(this.log) });
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid || exited(child)) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    await gone;
    // The forked per-connection children are in the same group; give the kernel a moment to reap them.
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A fresh SoftHSM token (sets SOFTHSM2_CONF for this process, like makeSoftHsmToken) and `count`
 * started p11-kit servers in front of it, named a, b, c, ...
 */
export async function startP11KitFleet(count = 1, label = 'keyhold-fleet'): Promise<P11KitFleet> {
  const token = makeSoftHsmToken(label);
  const members: Member[] = [];
  const names = 'abcdefghijklmnopqrstuvwxyz';
  const add = async (name?: string) => {
    const member = new Member(name ?? names[members.length] ?? `m${members.length}`, token);
    members.push(member);
    await member.start();
    return member;
  };
  try {
    for (let i = 0; i < count; i++) await add();
  } catch (err) {
    await Promise.all(members.map((m) => m.kill()));
    throw err;
  }
  return {
    token,
    members,
    addMember: add,
    async stop() {
      await Promise.all(members.map((m) => m.kill()));
    },
  };
}
