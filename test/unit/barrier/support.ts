import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import type { Storage, StorageChangeFeed } from '../../../src/storage/types.js';
import { tempDir } from '../../helpers/server.js';

/** A fresh SQLite file, removed when the test file ends; `open()` gives another connection to it (another process's view). */
export function sqliteFile(what: string): { open(): SqliteStorage } {
  const dir = tempDir(`keyhold-${what}-`);
  const opened: SqliteStorage[] = [];
  after(async () => {
    for (const s of opened) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    open() {
      const storage = SqliteStorage.open(path.join(dir, 'keyhold.db'));
      opened.push(storage);
      return storage;
    },
  };
}

/**
 * A change feed between connections to one SQLite file, for tests only: this branch has no store
 * shared between processes yet (PostgreSQL's LISTEN/NOTIFY feed is the replicas' work), and the
 * cache's side of the contract must be pinned now. Writes through `writer(...)` are queued to every
 * other replica and delivered when that replica's feed syncs, or when `deliver()` is called (a
 * notification arriving on its own), so a test can tell "synced before the hit" from "not".
 */
export class TestFeedBus {
  readonly #replicas: Array<{ feed: TestFeed }> = [];

  /** `storage` as replica `n` sees it: with a feed, and telling the others about its writes. */
  replica(storage: SqliteStorage): { storage: Storage; feed: TestFeed } {
    const feed = new TestFeed();
    const self = { feed };
    this.#replicas.push(self);
    const tell = (keys: string[]) => { for (const r of this.#replicas) if (r !== self) r.feed.queue(keys); };
    const shared: Storage = {
      changes: feed,
      get: (key) => storage.get(key),
      put: async (key, value) => { await storage.put(key, value); tell([key]); },
      delete: async (key) => { await storage.delete(key); tell([key]); },
      list: (prefix) => storage.list(prefix),
      snapshot: () => storage.snapshot(),
      atomic: async (checks, writes) => {
        const ok = await storage.atomic(checks, writes);
        if (ok) tell(writes.map((w) => w.key));
        return ok;
      },
      close: () => storage.close(),
    };
    return { storage: shared, feed };
  }
}

export class TestFeed implements StorageChangeFeed {
  readonly #listeners = new Set<(keys: readonly string[] | 'all') => void>();
  #pending: string[] = [];
  syncs = 0;

  queue(keys: string[]): void {
    this.#pending.push(...keys);
  }

  /** Hands queued changes to the listeners, as a notification arriving would. */
  deliver(): void {
    const keys = this.#pending;
    this.#pending = [];
    if (keys.length > 0) for (const l of this.#listeners) l(keys);
  }

  /** The connection was lost: changes may have been missed. */
  lost(): void {
    for (const l of this.#listeners) l('all');
  }

  async sync(): Promise<void> {
    this.syncs++;
    await Promise.resolve();
    this.deliver();
  }

  onChange(listener: (keys: readonly string[] | 'all') => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }
}
