import type { StorageChangeFeed } from '../storage/types.js';

/** What the cache holds for a record known to be absent (only when the caller asked to keep absences). */
const ABSENT = Symbol('absent');
export const DEFAULT_CACHE_ENTRIES = 50_000;

/**
 * The one in-memory copy of decoded barrier records, shared by every view, and the one place
 * where invalidation happens: the barrier evicts every path it writes (before and after the
 * commit), and a store shared between processes reports what the others changed through its
 * change feed (`Storage.changes`), which evicts too.
 *
 * A load that overlapped an eviction of its path must not be cached: it may have read the record
 * as it was before the write. Each eviction stamps its path with a counter while loads are in
 * flight, and a load caches only if its path was not stamped after the load began.
 *
 * With a feed, a hit is answered only after `feed.sync()`: every change another process
 * committed before this read began has then evicted its paths. Without a feed (one process owns
 * the store: SQLite, memory) a hit costs no await, and `peek` answers synchronously.
 */
export class ReadCache {
  readonly #entries = new Map<string, unknown>();
  /** path → counter value of its latest eviction, kept only while loads are in flight. */
  readonly #evictedAt = new Map<string, number>();
  #counter = 0;
  /** Counter value of the latest eviction of everything. */
  #clearedAt = 0;
  #loading = 0;
  readonly #feed: StorageChangeFeed | undefined;
  readonly #unsubscribe: (() => void) | undefined;

  /**
   * `toPath` maps a storage key reported by the feed to the cache's path (undefined: not a
   * cached record, e.g. the seal record).
   */
  constructor(feed: StorageChangeFeed | undefined, toPath: (storageKey: string) => string | undefined, private readonly maxEntries = DEFAULT_CACHE_ENTRIES) {
    this.#feed = feed;
    this.#unsubscribe = feed?.onChange((keys) => {
      if (keys === 'all') return this.clear();
      for (const key of keys) {
        const path = toPath(key);
        if (path !== undefined) this.evict(path);
      }
    });
  }

  /**
   * The cached value, synchronously: null for a cached absence, undefined when not cached or when
   * the store is shared (a hit must wait for `sync` then: use `get`).
   */
  peek<T>(path: string): T | null | undefined {
    if (this.#feed) return undefined;
    const hit = this.#entries.get(path);
    return hit === ABSENT ? null : (hit as T | undefined);
  }

  /** The cached value, or `load()`'s, cached unless a write overlapped it (and, unless `keepAbsent`, unless null). */
  async get<T>(path: string, load: () => Promise<T | null>, keepAbsent = false): Promise<T | null> {
    let hit = this.#entries.get(path);
    if (hit !== undefined && this.#feed) {
      await this.#feed.sync();
      hit = this.#entries.get(path);
    }
    if (hit !== undefined) return hit === ABSENT ? null : (hit as T);
    const began = this.#counter;
    this.#loading++;
    try {
      const value = await load();
      if ((value !== null || keepAbsent) && this.#clearedAt <= began && (this.#evictedAt.get(path) ?? 0) <= began) this.#set(path, value ?? ABSENT);
      return value;
    } finally {
      // No load in flight: nothing can be stale, so the stamps can go (this keeps the map small).
      if (--this.#loading === 0) this.#evictedAt.clear();
    }
  }

  evict(path: string): void {
    this.#entries.delete(path);
    if (this.#loading === 0) return;
    if (this.#evictedAt.size >= this.maxEntries) {
      // Bounded: forget the stamps, and refuse every load in flight instead.
      this.#evictedAt.clear();
      this.#clearedAt = ++this.#counter;
      return;
    }
    this.#evictedAt.set(path, ++this.#counter);
  }

  clear(): void {
    this.#entries.clear();
    this.#evictedAt.clear();
    this.#clearedAt = ++this.#counter;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Stops listening to the feed and drops everything (the barrier was sealed). */
  close(): void {
    this.#unsubscribe?.();
    this.clear();
  }

  #set(path: string, value: unknown): void {
    if (this.#entries.size >= this.maxEntries && !this.#entries.has(path)) {
      // Oldest first: Map iteration is insertion order.
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(path, value);
  }
}
