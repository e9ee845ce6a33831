import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { KeyholdError } from '../errors.js';
import { applyAtomic, type SyncStoreOps } from './atomic.js';
import type { Storage, StorageCheck, StorageEntry, StorageWrite } from './types.js';

/** The pragmas tests and diagnostics may read; a fixed list so `pragma()` can never be used to set one. */
export type SqlitePragma = 'journal_mode' | 'synchronous' | 'busy_timeout';

// In JS unicode mode this matches only unpaired surrogates. SQLite would store them as invalid
// UTF-8 and hand them back as U+FFFD, so two distinct keys could list as the same string.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function storageError(op: string, err: unknown): KeyholdError {
  if (err instanceof KeyholdError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new KeyholdError('ERR_STORAGE', `sqlite ${op} failed: ${msg}`, { cause: err });
}

function checkKey(key: string): void {
  if (LONE_SURROGATE.test(key)) throw new KeyholdError('ERR_STORAGE', 'storage key is not well-formed UTF-16');
}

/**
 * The smallest string greater than every string starting with `prefix` (null: no bound). TEXT
 * compares as UTF-8 bytes, whose order equals code point order, so bumping the last code point
 * is exact; LIKE would treat '%' and '_' in keys as wildcards.
 */
function prefixEnd(prefix: string): string | null {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = (cps.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) return cps.join('') + String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1);
  }
  return null;
}

/** Rows per page of a snapshot: bounded memory, and few enough statements to stay cheap. */
const SNAPSHOT_PAGE_ROWS = 256;

/** A write waiting for the next group commit. */
interface PendingWrite {
  op: string;
  apply: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

/**
 * Writes are group-committed: every put, delete and atomic issued in the same turn of the event
 * loop runs in one IMMEDIATE transaction (each in its own savepoint, in call order, so each sees
 * the ones before it and a failing one undoes only itself), and one fsync makes them all durable
 * before any promise resolves. better-sqlite3 is synchronous, so a commit per write blocked the
 * event loop for one fsync each (about 0.6 ms here): under a login storm that was the largest
 * single cost in the server's profile.
 */
export class SqliteStorage implements Storage {
  private closed = false;
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private readonly batchTx: Database.Transaction<(batch: readonly PendingWrite[]) => Outcome[]>;
  private readonly getStmt: Database.Statement<[string], Buffer>;
  private readonly putStmt: Database.Statement<[string, Buffer]>;
  private readonly deleteStmt: Database.Statement<[string]>;
  private readonly listAllStmt: Database.Statement<[], string>;
  private readonly listFromStmt: Database.Statement<[string], string>;
  private readonly listRangeStmt: Database.Statement<[string, string], string>;
  private readonly atomicTx: Database.Transaction<(checks: readonly StorageCheck[], writes: readonly StorageWrite[]) => boolean>;

  private constructor(private readonly db: Database.Database, private readonly file: string) {
    this.getStmt = db.prepare<[string], Buffer>('SELECT value FROM kv WHERE key = ?').pluck();
    this.putStmt = db.prepare<[string, Buffer]>('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    this.deleteStmt = db.prepare<[string]>('DELETE FROM kv WHERE key = ?');
    this.listAllStmt = db.prepare<[], string>('SELECT key FROM kv ORDER BY key').pluck();
    this.listFromStmt = db.prepare<[string], string>('SELECT key FROM kv WHERE key >= ? ORDER BY key').pluck();
    this.listRangeStmt = db.prepare<[string, string], string>('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key').pluck();
    const ops: SyncStoreOps = {
      get: (key) => this.getStmt.get(key) ?? null,
      put: (key, value) => this.putStmt.run(key, value),
      delete: (key) => this.deleteStmt.run(key),
    };
    this.atomicTx = db.transaction((checks: readonly StorageCheck[], writes: readonly StorageWrite[]) => applyAtomic(ops, checks, writes));
    // atomicTx, called inside batchTx, runs as its own SAVEPOINT; a put or delete is one statement,
    // which SQLite undoes by itself when it fails. So a failing write undoes only itself.
    this.batchTx = db.transaction((batch: readonly PendingWrite[]) => batch.map((w): Outcome => {
      try {
        return { ok: true, value: w.apply() };
      } catch (err) {
        return { ok: false, err };
      }
    }));
  }

  static open(file: string): SqliteStorage {
    let db: Database.Database | undefined;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      // Create the file ourselves so it is born 0600; SQLite gives -wal/-shm the same mode.
      fs.closeSync(fs.openSync(file, 'a', 0o600));
      db = new Database(file);
      // WAL + FULL: a commit is fsynced before it returns, which is what "durable when the
      // promise resolves" in the Storage contract requires.
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
      return new SqliteStorage(db, file);
    } catch (err) {
      db?.close();
      throw storageError('open', err);
    }
  }

  /** Read-only view of a connection pragma (synchronous is per connection, so another connection can't see it). */
  pragma(name: SqlitePragma): unknown {
    return this.run('pragma', () => this.db.pragma(name, { simple: true }));
  }

  async get(key: string): Promise<Buffer | null> {
    return this.run('get', () => {
      checkKey(key);
      return this.getStmt.get(key) ?? null;
    });
  }

  async put(key: string, value: Buffer): Promise<void> {
    this.run('put', () => checkKey(key));
    await this.enqueue('put', () => this.putStmt.run(key, value));
  }

  async delete(key: string): Promise<void> {
    this.run('delete', () => checkKey(key));
    await this.enqueue('delete', () => this.deleteStmt.run(key));
  }

  async list(prefix: string): Promise<string[]> {
    return this.run('list', () => {
      checkKey(prefix);
      if (prefix === '') return this.listAllStmt.all();
      const end = prefixEnd(prefix);
      return end === null ? this.listFromStmt.all(prefix) : this.listRangeStmt.all(prefix, end);
    });
  }

  async atomic(checks: readonly StorageCheck[], writes: readonly StorageWrite[]): Promise<boolean> {
    this.run('atomic', () => {
      for (const c of checks) checkKey(c.key);
      for (const w of writes) checkKey(w.key);
    });
    // The batch runs IMMEDIATE: the write lock is taken before any check is read, so no other
    // connection can change a checked key between the compare and the writes.
    return (await this.enqueue('atomic', () => this.atomicTx(checks, writes))) as boolean;
  }

  /**
   * A separate read-only connection in one read transaction: in WAL mode it reads the database as
   * of its first SELECT while this connection (or a running server's) goes on committing. Read in
   * pages by key, so memory stays bounded whatever the store's size; the transaction (which holds
   * back WAL checkpoints past its snapshot) ends when the loop ends or breaks.
   */
  snapshot(): AsyncIterable<StorageEntry> {
    return this.snapshotEntries();
  }

  private async *snapshotEntries(): AsyncGenerator<StorageEntry> {
    this.run('snapshot', () => undefined);
    let reader: Database.Database | undefined;
    try {
      reader = this.run('snapshot', () => {
        const db = new Database(this.file, { readonly: true, fileMustExist: true });
        db.pragma('busy_timeout = 5000');
        return db;
      });
      const first = reader.prepare<[number], StorageEntry>('SELECT key, value FROM kv ORDER BY key LIMIT ?');
      const next = reader.prepare<[string, number], StorageEntry>('SELECT key, value FROM kv WHERE key > ? ORDER BY key LIMIT ?');
      reader.exec('BEGIN');
      let page = this.run('snapshot', () => first.all(SNAPSHOT_PAGE_ROWS));
      while (page.length > 0) {
        for (const entry of page) yield entry;
        if (page.length < SNAPSHOT_PAGE_ROWS) break;
        const after = (page[page.length - 1] as StorageEntry).key;
        page = this.run('snapshot', () => next.all(after, SNAPSHOT_PAGE_ROWS));
      }
    } finally {
      try { reader?.exec('COMMIT'); } catch { /* read transaction: nothing to keep */ }
      reader?.close();
    }
  }

  /** Idempotent, so cleanup paths can always call it. Writes already issued are committed first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    try {
      this.db.close();
    } catch (err) {
      throw storageError('close', err);
    }
  }

  private enqueue(op: string, apply: () => unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new KeyholdError('ERR_STORAGE', `sqlite ${op} failed: storage is closed`));
    return new Promise((resolve, reject) => {
      this.pending.push({ op, apply, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** One transaction, one fsync, for every write issued since the last flush. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let outcomes: Outcome[];
    try {
      if (this.closed) throw new Error('storage is closed');
      outcomes = this.batchTx.immediate(batch);
    } catch (err) {
      // The commit itself failed: nothing in the batch is durable.
      for (const w of batch) w.reject(storageError(w.op, err));
      return;
    }
    outcomes.forEach((outcome, i) => {
      const w = batch[i] as PendingWrite;
      if (outcome.ok) w.resolve(outcome.value);
      else w.reject(storageError(w.op, outcome.err));
    });
  }

  private run<T>(op: string, fn: () => T): T {
    if (this.closed) throw new KeyholdError('ERR_STORAGE', `sqlite ${op} failed: storage is closed`);
    try {
      return fn();
    } catch (err) {
      throw storageError(op, err);
    }
  }
}
