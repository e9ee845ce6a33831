/**
 * What other replicas changed, from PostgreSQL's LISTEN/NOTIFY (see StorageChangeFeed).
 *
 * Every write transaction calls notifyChanges() before its COMMIT: pg_notify is transactional, so
 * listeners hear of a change exactly when it commits, and never of a rolled-back one. A committing
 * backend signals the listening backends before its COMMIT returns, and a backend sends the
 * notifications it has pending before the ReadyForQuery of any query it runs. So one round trip
 * on the listening connection, started after a writer's commit returned, delivers that writer's
 * notification before it completes: that is sync().
 *
 * When the listening connection is lost, changes may be missed: listeners get 'all', sync() fails
 * (ERR_STORAGE_UNAVAILABLE, a 503) until a new connection listens again, and listeners get 'all' once more
 * then, because caches may have been filled from reads made while nobody listened.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { withTimeout, type NewPgClient } from './pg-session.js';
import { KeyholdError } from '../errors.js';
import type { StorageChangeFeed } from './types.js';

export const CHANGE_CHANNEL = 'keyhold_changes';
/** PostgreSQL refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7900;
const ROUND_TRIP_TIMEOUT_MS = 5000;
const RECONNECT_INTERVAL_MS = 500;
const HEARTBEAT_INTERVAL_MS = 10_000;

interface Payload {
  /** The sending feed (its own notifications are skipped: a process's own caches follow its writes). */
  s: string;
  k?: readonly string[];
  all?: true;
}

/**
 * The notifications of one transaction: its keys, in as many payloads as they need (a group commit
 * can carry hundreds of writes; one "all" for them would empty every other replica's caches under
 * write load). A key too long for a payload on its own becomes "all".
 */
export function changePayloads(sender: string, keys: readonly string[]): string[] {
  const payloads: string[] = [];
  const overhead = Buffer.byteLength(JSON.stringify({ s: sender, k: [] } satisfies Payload));
  let batch: string[] = [];
  let size = overhead;
  for (const key of keys) {
    const cost = Buffer.byteLength(JSON.stringify(key)) + 1;
    if (overhead + cost > MAX_PAYLOAD_BYTES) return [JSON.stringify({ s: sender, all: true } satisfies Payload)];
    if (size + cost > MAX_PAYLOAD_BYTES) {
      payloads.push(JSON.stringify({ s: sender, k: batch } satisfies Payload));
      batch = [];
      size = overhead;
    }
    batch.push(key);
    size += cost;
  }
  if (batch.length > 0) payloads.push(JSON.stringify({ s: sender, k: batch } satisfies Payload));
  return payloads;
}

/** Call inside a write transaction, before COMMIT, with every key it puts or deletes (one round trip). */
export async function notifyChanges(client: pg.ClientBase, sender: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await client.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [CHANGE_CHANNEL, changePayloads(sender, keys)]);
}

function unavailable(cause?: unknown): KeyholdError {
  const why = cause instanceof Error ? ` (${cause.message})` : '';
  return new KeyholdError('ERR_STORAGE_UNAVAILABLE', `storage change feed unavailable${why}: cannot tell whether cached data is current`, cause === undefined ? undefined : { cause });
}

export class PgChangeFeed implements StorageChangeFeed {
  /** Written into every notification this process sends. */
  readonly sender = randomUUID();
  readonly #listeners = new Set<(keys: readonly string[] | 'all') => void>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #lastFailure = 0;
  #lastError: unknown;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  /** Round trips made (for metrics: how much the coalescing saves). */
  roundTrips = 0;
  notifications = 0;

  constructor(private readonly newClient: NewPgClient, private readonly warn: (message: string) => void) {}

  /** Listens before the store serves anything. */
  async start(): Promise<void> {
    await this.#listen();
    // An idle replica still notices a dead connection (and a server's idle_session_timeout never
    // closes it): a round trip now and then, shared with any request's.
    this.#heartbeat = setInterval(() => {
      if (this.#client && !this.#running) this.sync().catch(() => undefined);
    }, HEARTBEAT_INTERVAL_MS);
    this.#heartbeat.unref();
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  onChange(listener: (keys: readonly string[] | 'all') => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * One round trip on the listening connection. Callers that arrive while one is in flight wait
   * for the next one (which they share): the one in flight may have started before a commit they
   * must see.
   */
  sync(): Promise<void> {
    if (!this.#running) return this.#roundTrip();
    this.#queued ??= this.#running.then(noop, noop).then(() => {
      this.#queued = undefined;
      return this.#running ?? this.#roundTrip();
    });
    return this.#queued;
  }

  #roundTrip(): Promise<void> {
    const trip = (async () => {
      const client = this.#client ?? (await this.#listen());
      this.roundTrips++;
      try {
        await withTimeout(client.query('SELECT 1'), ROUND_TRIP_TIMEOUT_MS);
      } catch (err) {
        this.#lost(client, err);
        throw unavailable(err);
      }
    })();
    this.#running = trip;
    void trip.then(noop, noop).then(() => {
      if (this.#running === trip) this.#running = undefined;
    });
    return trip;
  }

  /** A connection that LISTENs; shared by concurrent callers; fails fast right after a failure. */
  #listen(): Promise<pg.Client> {
    if (this.#closed) return Promise.reject(unavailable());
    if (Date.now() - this.#lastFailure < RECONNECT_INTERVAL_MS) return Promise.reject(unavailable(this.#lastError));
    this.#connecting ??= (async () => {
      const client = this.newClient({ keepAlive: true, keepAliveInitialDelayMillis: 2000, application_name: `keyhold-listen-${this.sender.slice(0, 8)}` });
      client.on('error', (err) => this.#lost(client, err));
      client.on('end', () => this.#lost(client, new Error('connection ended')));
      client.on('notification', (message) => {
        if (message.channel === CHANGE_CHANNEL && this.#client === client) this.#deliver(message.payload);
      });
      try {
        await withTimeout(client.connect(), ROUND_TRIP_TIMEOUT_MS);
        await withTimeout(client.query(`LISTEN ${CHANGE_CHANNEL}`), ROUND_TRIP_TIMEOUT_MS);
      } catch (err) {
        void client.end().catch(noop);
        this.#lastFailure = Date.now();
        this.#lastError = err;
        throw unavailable(err);
      }
      if (this.#closed) {
        void client.end().catch(noop);
        throw unavailable();
      }
      this.#client = client;
      clearTimeout(this.#reconnect);
      // Whatever committed while nobody listened is unknown: caches start again from storage.
      this.#emit('all');
      return client;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  #lost(client: pg.Client, err: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#lastError = err;
    void client.end().catch(noop);
    this.#emit('all');
    if (this.#closed) return;
    this.warn(`storage change feed lost its connection (${(err as Error).message ?? String(err)}); caches are dropped until it listens again`);
    this.#scheduleReconnect();
  }

  /** Listens again in the background too, so a replica nobody asks anything recovers by itself. */
  #scheduleReconnect(): void {
    clearTimeout(this.#reconnect);
    this.#reconnect = setTimeout(() => {
      if (this.#client || this.#closed) return;
      this.#listen().catch(() => this.#scheduleReconnect());
    }, RECONNECT_INTERVAL_MS);
    this.#reconnect.unref();
  }

  #deliver(raw: string | undefined): void {
    let payload: Payload;
    try {
      payload = JSON.parse(raw ?? '') as Payload;
    } catch {
      this.#emit('all'); // not ours, or damaged: assume anything changed
      return;
    }
    if (payload.s === this.sender) return;
    this.notifications++;
    this.#emit(payload.all || !Array.isArray(payload.k) ? 'all' : payload.k);
  }

  #emit(keys: readonly string[] | 'all'): void {
    for (const listener of this.#listeners) {
      try {
        listener(keys);
      } catch (err) {
        this.warn(`change listener failed: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnect);
    clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(noop);
  }
}

function noop(): void {}
