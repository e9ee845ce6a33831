/**
 * Which replica runs the background work: the one holding a PostgreSQL session advisory lock.
 *
 * The lock lives as long as the session that took it, so it goes with the connection: a replica
 * killed with -9 closes its socket, its backend exits and the lock is free at once; a replica
 * whose host vanishes (no FIN) is noticed by the server's TCP keepalive (set below, about 8 s).
 * Every other replica asks for the lock every second, on a connection of its own (never a pooled
 * one: a session lock taken on a pooled connection would be held by whoever borrows it next).
 *
 * The holder checks its session every second too: when the check fails or takes longer than
 * HEARTBEAT_TIMEOUT_MS, it steps down at once, before the server could have handed the lock on
 * (which takes the keepalive's ~8 s). Jobs are written to be safe if they overlap for a moment
 * anyway (a sweep and a revocation are idempotent deletions).
 */
import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { withTimeout, type NewPgClient } from '../storage/pg-session.js';

/** Leadership as the rest of the server sees it; SQLite's is always true. */
export interface Leadership {
  readonly replicaId: string;
  readonly isLeader: boolean;
  /** Called with every change (true: became leader; false: lost it). */
  onChange(listener: (leader: boolean) => void): () => void;
  close(): Promise<void>;
}

/** One process owns its SQLite file: it is always the leader. */
export class SoleLeader implements Leadership {
  readonly replicaId = randomUUID();
  readonly isLeader = true;
  onChange(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

/** The advisory lock's key: the same on every replica of one database. */
export const LEADER_LOCK_KEY = createHash('sha256').update('keyhold/leader/v1').digest().readBigInt64BE(0);

export const POLL_INTERVAL_MS = 1000;
const HEARTBEAT_TIMEOUT_MS = 3000;
/**
 * The server drops a silent client after idle + interval × count seconds (kill -9 of the process
 * needs none of this: the kernel closes the socket). Kept well under the 10 s a takeover may take.
 */
const SESSION_OPTIONS = '-c tcp_keepalives_idle=4 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 -c statement_timeout=3000';

export interface AdvisoryLeaderOptions {
  /** A new, unconnected client for the database (same URL, password and TLS as the store's pool). */
  newClient: NewPgClient;
  warn(message: string): void;
  pollIntervalMs?: number;
}

export class AdvisoryLockLeader implements Leadership {
  readonly replicaId = randomUUID();
  #leader = false;
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #busy = false;
  #lastError: string | undefined;
  readonly #listeners = new Set<(leader: boolean) => void>();

  constructor(private readonly options: AdvisoryLeaderOptions) {}

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Why the last attempt or heartbeat failed (for health), undefined after a success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  onChange(listener: (leader: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tries once now (so a lone replica leads from its start), then every poll interval. */
  async start(): Promise<void> {
    await this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.options.pollIntervalMs ?? POLL_INTERVAL_MS);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    try {
      const client = this.#client ?? (await this.#connect());
      if (this.#leader) {
        await withTimeout(client.query('SELECT 1'), HEARTBEAT_TIMEOUT_MS);
      } else {
        const result = await withTimeout(client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [LEADER_LOCK_KEY.toString()]), HEARTBEAT_TIMEOUT_MS);
        if (result.rows[0]?.locked === true && !this.#closed) this.#set(true);
      }
      this.#lastError = undefined;
    } catch (err) {
      this.#lastError = (err as Error).message;
      this.#drop();
    } finally {
      this.#busy = false;
    }
  }

  async #connect(): Promise<pg.Client> {
    const client = this.options.newClient({ keepAlive: true, keepAliveInitialDelayMillis: 2000, options: SESSION_OPTIONS, application_name: `keyhold-leader-${this.replicaId.slice(0, 8)}` });
    // Without a listener an 'error' event (the server went away) would crash the process.
    client.on('error', (err) => {
      this.#lastError = err.message;
      if (this.#client === client) this.#drop();
    });
    client.on('end', () => {
      if (this.#client === client) this.#drop();
    });
    try {
      await withTimeout(client.connect(), HEARTBEAT_TIMEOUT_MS);
    } catch (err) {
      void client.end().catch(() => undefined);
      throw err;
    }
    this.#client = client;
    return client;
  }

  /** The session is gone or unhealthy: whatever lock it held is (or soon will be) someone else's. */
  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    if (client) void client.end().catch(() => undefined);
    if (this.#leader) this.#set(false);
  }

  #set(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    for (const listener of this.#listeners) {
      try {
        listener(leader);
      } catch (err) {
        this.options.warn(`leadership listener failed: ${(err as Error).message}`);
      }
    }
  }

  /** Steps down (the lock goes with the session) and stops contending. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#set(false);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}
