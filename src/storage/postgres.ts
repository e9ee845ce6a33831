import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { KeyholdError } from '../errors.js';
import { isRetryable, isUnavailable, storageError } from './postgres-errors.js';
import { migrate } from './postgres-schema.js';
import type { Storage, StorageCheck, StorageEntry, StorageWrite } from './types.js';

/** Where and how to connect; built from the config by postgres-config.ts. */
export interface PostgresOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  /** TLS to the database; absent: plain TCP (or a Unix socket). */
  ssl?: ConnectionOptions;
  /** Connections in the pool (default 10). Writes use one at a time; reads the rest. */
  poolMax?: number;
  /** Server-side limit per statement (default 5000 ms); a statement over it fails as unavailable. */
  statementTimeoutMs?: number;
  /** How long to wait for a connection, new or from the pool (default 5000 ms). */
  connectTimeoutMs?: number;
  applicationName?: string;
  /** Where connection errors of idle pooled connections are reported (they are otherwise harmless). */
  warn?: (message: string) => void;
}

/** One write of a transaction, as the hooks see it. */
export interface WriteInfo {
  op: 'put' | 'delete' | 'atomic' | 'none';
  /** The keys it wrote (an atomic whose check failed wrote none). */
  keys: readonly string[];
  /** What `contextOf` returned when the write was issued (or what `commitContext` was given). */
  context: unknown;
}

/**
 * Work added to every write transaction (a change notification, audit records). `beforeCommit`
 * runs on the transaction's connection after its writes: what it does commits or rolls back with
 * them, and if it throws, the transaction fails. A transaction that PostgreSQL aborts is run again
 * whole, so `beforeCommit` may run more than once for the same writes: it must build its work from
 * scratch each time, and take it as done only in `afterCommit`.
 */
export interface WriteHook {
  beforeCommit(client: pg.ClientBase, writes: readonly WriteInfo[]): Promise<void>;
  afterCommit?(writes: readonly WriteInfo[]): void;
}

// In JS unicode mode this matches only unpaired surrogates, which UTF-8 cannot encode: two
// distinct keys would be stored as the same bytes (U+FFFD). The same rule as SQLite's.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function keyBytes(key: string): Buffer {
  if (LONE_SURROGATE.test(key)) throw new KeyholdError('ERR_STORAGE', 'storage key is not well-formed UTF-16');
  return Buffer.from(key, 'utf8');
}

/** The smallest byte string greater than every one starting with `prefix` (null: no bound). */
function prefixEnd(prefix: Buffer): Buffer | null {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return null;
  const bound = Buffer.from(prefix.subarray(0, end));
  bound[end - 1] = (bound[end - 1] as number) + 1;
  return bound;
}

// Named statements: prepared once per connection, then sent as a bind only.
const Q = {
  get: 'SELECT value FROM kv WHERE key = $1',
  put: 'INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
  delete: 'DELETE FROM kv WHERE key = $1',
  check: 'SELECT key, value FROM kv WHERE key = ANY($1::bytea[])',
  listAll: 'SELECT key FROM kv ORDER BY key',
  listFrom: 'SELECT key FROM kv WHERE key >= $1 ORDER BY key',
  listRange: 'SELECT key FROM kv WHERE key >= $1 AND key < $2 ORDER BY key',
  pageFirst: 'SELECT key, value FROM kv ORDER BY key LIMIT $1',
  pageAfter: 'SELECT key, value FROM kv WHERE key > $1 ORDER BY key LIMIT $2',
} as const;

const named = (name: keyof typeof Q, values: unknown[]): pg.QueryConfig => ({ name: `keyhold_${name}`, text: Q[name], values });

/** A write waiting for the next transaction. */
interface PendingWrite {
  op: WriteInfo['op'];
  context: unknown;
  /** Runs the write on the transaction's connection; returns its result and the keys it wrote. */
  apply: (client: pg.ClientBase) => Promise<{ value: unknown; keys: readonly string[] }>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** Writes per transaction at most: bounds a transaction's size and lock set under a burst. */
const MAX_BATCH = 256;
/** Attempts of a transaction PostgreSQL aborted to keep it serializable, before giving up (503). */
const MAX_ATTEMPTS = 10;
const SNAPSHOT_PAGE = 500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Storage on PostgreSQL, shared by every replica (docs/design-notes.md, "PostgreSQL storage").
 *
 * Writes are group-committed, as on SQLite: the writes issued while the previous transaction
 * commits go into the next one, in call order, so each sees the ones before it and one commit
 * (one WAL flush) makes them all durable. Write transactions are SERIALIZABLE: an atomic's checks
 * then hold against every other replica's writes, not only this process's, and PostgreSQL aborts
 * (40001/40P01) what it cannot order; those are retried with backoff. Reads run on the other
 * pooled connections, in parallel, outside any transaction.
 */
export class PostgresStorage implements Storage {
  private closed = false;
  private pending: PendingWrite[] = [];
  /** The write pump: set while transactions run, so one runs at a time, in call order. */
  private pumping: Promise<void> | null = null;
  private readonly hooks: WriteHook[] = [];
  /**
   * Called when a write is issued; what it returns goes with the write to the hooks (e.g. the
   * audit record of the request that issued it, from an AsyncLocalStorage). Unset: nothing.
   */
  contextOf: (() => unknown) | undefined;

  private constructor(
    /** The connection pool; the replica layer (change feed, leader lock) may take connections from it. */
    readonly pool: pg.Pool,
  ) {}

  /** Connects, creates or upgrades the schema; fails (ERR_STORAGE_UNAVAILABLE / ERR_STORAGE) if the database cannot be used. */
  static async open(options: PostgresOptions): Promise<PostgresStorage> {
    const pool = new pg.Pool({
      host: options.host,
      port: options.port,
      user: options.user,
      database: options.database,
      ...(options.password !== undefined ? { password: options.password } : {}),
      ssl: options.ssl ?? false,
      max: options.poolMax ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      // Sent in the start-up packet: no extra round trip per connection.
      statement_timeout: options.statementTimeoutMs ?? 5000,
      // A backstop for a network that drops packets without resetting: the server-side timeout never answers then.
      query_timeout: (options.statementTimeoutMs ?? 5000) + 5000,
      idle_in_transaction_session_timeout: 60_000,
      application_name: options.applicationName ?? 'keyhold',
      keepAlive: true,
    });
    // A pooled idle connection the server closes (restart, failover) emits here; without a
    // listener that would crash the process. The pool drops it and connects anew when needed.
    pool.on('error', (err) => options.warn?.(`postgres: idle connection lost: ${err.message}`));
    // A connection lost while checked out emits 'error' on its client too, besides failing the
    // query in flight (which is how the operation learns of it): without a listener, a crash.
    pool.on('connect', (client) => client.on('error', () => undefined));
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      await migrate(client);
      client.release();
    } catch (err) {
      client?.release(true);
      await pool.end().catch(() => undefined);
      throw storageError('open', err);
    }
    return new PostgresStorage(pool);
  }

  /** Adds work to every write transaction (see WriteHook); returns a function that removes it. */
  addWriteHook(hook: WriteHook): () => void {
    this.hooks.push(hook);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /**
   * Commits a transaction that writes nothing of its own, carrying `context` to the hooks (an
   * audit record of a request that wrote nothing). Ordered with the writes like any write.
   */
  async commitContext(context: unknown): Promise<void> {
    this.ready('commit');
    await this.enqueue('none', async () => ({ value: undefined, keys: [] }), context);
  }

  async get(key: string): Promise<Buffer | null> {
    const k = this.ready('get', key);
    const res = await this.read('get', named('get', [k]));
    return (res.rows[0]?.value as Buffer | undefined) ?? null;
  }

  async put(key: string, value: Buffer): Promise<void> {
    const k = this.ready('put', key);
    // Copied now: the caller may reuse its buffer before the transaction runs.
    const v = Buffer.from(value);
    await this.enqueue('put', async (client) => {
      await client.query(named('put', [k, v]));
      return { value: undefined, keys: [key] };
    });
  }

  async delete(key: string): Promise<void> {
    const k = this.ready('delete', key);
    await this.enqueue('delete', async (client) => {
      await client.query(named('delete', [k]));
      return { value: undefined, keys: [key] };
    });
  }

  async list(prefix: string): Promise<string[]> {
    const p = this.ready('list', prefix);
    const end = prefixEnd(p);
    const query = p.length === 0 ? named('listAll', []) : end === null ? named('listFrom', [p]) : named('listRange', [p, end]);
    const res = await this.read('list', query);
    return res.rows.map((r: { key: Buffer }) => r.key.toString('utf8'));
  }

  async atomic(checks: readonly StorageCheck[], writes: readonly StorageWrite[]): Promise<boolean> {
    this.ready('atomic');
    const checkKeys = checks.map((c) => keyBytes(c.key));
    const expected = new Map<string, Buffer | null>();
    for (const c of checks) expected.set(c.key, c.value === null ? null : Buffer.from(c.value));
    const ops = writes.map((w) => (w.op === 'put' ? { op: w.op, key: w.key, k: keyBytes(w.key), v: Buffer.from(w.value) } : { op: w.op, key: w.key, k: keyBytes(w.key) }));
    return (await this.enqueue('atomic', async (client) => {
      if (checkKeys.length > 0) {
        const found = new Map<string, Buffer>();
        for (const row of (await client.query(named('check', [checkKeys]))).rows as { key: Buffer; value: Buffer }[]) found.set(row.key.toString('utf8'), row.value);
        for (const [key, want] of expected) {
          const current = found.get(key) ?? null;
          const holds = current === null || want === null ? current === want : current.equals(want);
          if (!holds) return { value: false, keys: [] };
        }
      }
      for (const w of ops) {
        if (w.op === 'put') await client.query(named('put', [w.k, w.v]));
        else await client.query(named('delete', [w.k]));
      }
      return { value: true, keys: ops.map((w) => w.key) };
    })) as boolean;
  }

  /**
   * Every record, ascending by key, as of one moment: a REPEATABLE READ, READ ONLY transaction
   * read in keyset pages, so writes go on meanwhile and none of them shows. Holds one pooled
   * connection until the iteration ends (or is abandoned: `return()` releases it).
   */
  async *snapshot(): AsyncGenerator<StorageEntry> {
    this.ready('snapshot');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw storageError('snapshot', err);
    }
    let broken: Error | undefined;
    let open = false;
    try {
      open = true;
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // The consumer may take its time between pages (writing a file): not an abandoned session.
      await client.query('SET LOCAL idle_in_transaction_session_timeout = 0');
      let after: Buffer | null = null;
      for (;;) {
        const res: pg.QueryResult<{ key: Buffer; value: Buffer }> = await client.query(after === null ? named('pageFirst', [SNAPSHOT_PAGE]) : named('pageAfter', [after, SNAPSHOT_PAGE]));
        for (const row of res.rows) yield { key: row.key.toString('utf8'), value: row.value };
        if (res.rows.length < SNAPSHOT_PAGE) break;
        after = (res.rows[res.rows.length - 1] as { key: Buffer }).key;
      }
      await client.query('COMMIT');
      open = false;
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      throw storageError('snapshot', err);
    } finally {
      // Abandoned mid-way (or failed): end the transaction before the connection goes back.
      if (open && broken === undefined) await client.query('ROLLBACK').catch((err: Error) => { broken = err; });
      client.release(broken !== undefined && isUnavailable(broken) ? broken : undefined);
    }
  }

  /** Idempotent. Writes already issued are committed first; then the pool's connections close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.pumping) await this.pumping;
    await this.pool.end().catch(() => undefined);
  }

  /** Refuses an operation on a closed store, and converts its key (if any), synchronously. */
  private ready(op: string, key?: string): Buffer {
    if (this.closed) throw new KeyholdError('ERR_STORAGE', `postgres ${op} failed: storage is closed`);
    return key === undefined ? Buffer.alloc(0) : keyBytes(key);
  }

  private async read(op: string, query: pg.QueryConfig): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(query);
    } catch (err) {
      throw storageError(op, err);
    }
  }

  private enqueue(op: PendingWrite['op'], apply: PendingWrite['apply'], context: unknown = this.contextOf?.()): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ op, context, apply, resolve, reject });
      // Deferred to the next turn, so the writes issued in this one share a transaction.
      this.pumping ??= new Promise<void>((done) => setImmediate(done)).then(() => this.pump());
    });
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending.length > 0) await this.runBatch(this.pending.splice(0, MAX_BATCH));
    } finally {
      this.pumping = null;
    }
  }

  /** Runs a batch as one transaction; settles every write in it, never throws. */
  private async runBatch(batch: readonly PendingWrite[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let outcomes: unknown[];
      try {
        outcomes = await this.transaction(batch);
      } catch (err) {
        if (isRetryable(err) && attempt < MAX_ATTEMPTS) {
          // Exponential with jitter, so two replicas that collided do not collide again in step.
          await sleep(Math.min(200, 2 ** attempt) * (0.5 + Math.random()));
          continue;
        }
        if (batch.length > 1 && !isUnavailable(err)) {
          // One write's own failure aborts the shared transaction: run each alone, so only it fails.
          for (const w of batch) await this.runBatch([w]);
          return;
        }
        for (const w of batch) w.reject(storageError(w.op, err));
        return;
      }
      batch.forEach((w, i) => w.resolve(outcomes[i]));
      return;
    }
  }

  private async transaction(batch: readonly PendingWrite[]): Promise<unknown[]> {
    const infos = await this.commitBatch(batch);
    for (const hook of this.hooks) hook.afterCommit?.(infos);
    return infos.map((i) => i.value);
  }

  private async commitBatch(batch: readonly PendingWrite[]): Promise<(WriteInfo & { value: unknown })[]> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      const infos: (WriteInfo & { value: unknown })[] = [];
      for (const w of batch) {
        const { value, keys } = await w.apply(client);
        infos.push({ op: w.op, keys, context: w.context, value });
      }
      for (const hook of this.hooks) await hook.beforeCommit(client, infos);
      await client.query('COMMIT');
      client.release();
      return infos;
    } catch (err) {
      // A connection that failed is dropped from the pool; one whose statement failed is rolled back and reused.
      if (isUnavailable(err) && !isRetryable(err)) client.release(err instanceof Error ? err : true);
      else await client.query('ROLLBACK').then(() => client.release(), (e: Error) => client.release(e));
      throw err;
    }
  }
}
