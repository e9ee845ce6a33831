/**
 * What turns a store shared between processes (PostgreSQL) into one replicas can share: its
 * change feed (every write transaction notifies; a LISTEN session hears the others') and the
 * unpooled sessions the leader lock needs. A store of one process (SQLite, memory) is left as it is.
 */
import pg from 'pg';
import { notifyChanges, PgChangeFeed } from '../storage/pg-change-feed.js';
import type { NewPgClient } from '../storage/pg-session.js';
import { PostgresStorage } from '../storage/postgres.js';
import type { Storage, StorageChangeFeed } from '../storage/types.js';

export interface SharedStorage {
  newSessionClient: NewPgClient;
  feed: PgChangeFeed;
  close(): Promise<void>;
}

/** Call right after opening the store, before anything caches what it reads. */
export async function shareStorage(storage: Storage, warn: (message: string) => void): Promise<SharedStorage | undefined> {
  if (!(storage instanceof PostgresStorage)) return undefined;
  const shared = storage;
  // The pool's own settings (host, user, password, TLS, timeouts), on a session of its own.
  // (The pool keeps the password as a non-enumerable property, which a spread would drop.)
  const options = shared.pool.options as pg.ClientConfig;
  const newSessionClient: NewPgClient = (overrides) => new pg.Client({ ...options, password: options.password, ssl: options.ssl, ...overrides });
  const feed = new PgChangeFeed(newSessionClient, warn);
  await feed.start();
  // Kept to the end: writes made while closing (the audit's last checkpoint) still notify.
  shared.addWriteHook({ beforeCommit: (client, writes) => notifyChanges(client, feed.sender, writes.flatMap((w) => w.keys)) });
  (shared as { changes?: StorageChangeFeed }).changes = feed;
  return {
    newSessionClient,
    feed,
    close: () => feed.close(),
  };
}
