/**
 * What turns a store shared between processes (PostgreSQL) into one replicas can share: its
 * change feed (every write transaction notifies; a LISTEN session hears the others') and the
 * unpooled sessions the leader lock needs. A store of one process (SQLite, memory) is left as it is.
 */
import pg from 'pg';
import { notifyChanges, PgChangeFeed } from '../storage/pg-change-feed.js';
import type { NewPgClient } from '../storage/pg-session.js';
import type { Storage, StorageChangeFeed } from '../storage/types.js';

/** What PostgresStorage offers the replica layer: its pool (for the connection settings) and a hook in every write transaction. */
interface PoolBackedStorage {
  readonly pool: pg.Pool;
  addWriteHook(hook: (client: pg.ClientBase, writes: ReadonlyArray<{ keys: readonly string[] }>) => Promise<void>): () => void;
}

export interface SharedStorage {
  newSessionClient: NewPgClient;
  feed: PgChangeFeed;
  close(): Promise<void>;
}

function poolBacked(storage: Storage): (Storage & PoolBackedStorage) | undefined {
  const candidate = storage as Partial<PoolBackedStorage>;
  return candidate.pool instanceof pg.Pool && typeof candidate.addWriteHook === 'function' ? (storage as Storage & PoolBackedStorage) : undefined;
}

/** Call right after opening the store, before anything caches what it reads. */
export async function shareStorage(storage: Storage, warn: (message: string) => void): Promise<SharedStorage | undefined> {
  const shared = poolBacked(storage);
  if (!shared) return undefined;
  // The pool's own settings (host, user, password, TLS, timeouts), on a session of its own.
  // (The pool keeps the password as a non-enumerable property, which a spread would drop.)
  const options = shared.pool.options as pg.ClientConfig;
  const newSessionClient: NewPgClient = (overrides) => new pg.Client({ ...options, password: options.password, ssl: options.ssl, ...overrides });
  const feed = new PgChangeFeed(newSessionClient, warn);
  await feed.start();
  // Kept to the end: writes made while closing (the audit's last checkpoint) still notify.
  shared.addWriteHook((client, writes) => notifyChanges(client, feed.sender, writes.flatMap((w) => w.keys)));
  (shared as { changes?: StorageChangeFeed }).changes = feed;
  return {
    newSessionClient,
    feed,
    close: () => feed.close(),
  };
}
