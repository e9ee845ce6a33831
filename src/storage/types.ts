/**
 * Storage is untrusted: it only ever sees what the barrier hands it (ciphertext), plus the wrapped
 * root key. Keys are '/'-separated logical paths. Every implementation passes
 * test/contract/storage.ts unchanged.
 */
export interface StorageEntry {
  key: string;
  value: Buffer;
}

/** A condition checked atomically before a batch of writes: the key's current bytes must equal `value` (null: absent). */
export interface StorageCheck {
  key: string;
  value: Buffer | null;
}

export type StorageWrite =
  | { op: 'put'; key: string; value: Buffer }
  | { op: 'delete'; key: string };

/**
 * What other processes sharing the store changed (PostgreSQL replicas). A store used by one
 * process only (SQLite, memory) has none: its own writes are all there is.
 */
export interface StorageChangeFeed {
  /**
   * Resolves once every change committed (by any process) before this call has been passed to the
   * listeners. A cache may answer from memory only after this, so a read that starts after another
   * replica acknowledged a write sees that write.
   */
  sync(): Promise<void>;
  /** `keys` another process changed, or 'all' when changes may have been missed (a lost connection). */
  onChange(listener: (keys: readonly string[] | 'all') => void): () => void;
}

export interface Storage {
  /** Present only on stores shared between processes; see StorageChangeFeed. */
  readonly changes?: StorageChangeFeed;
  get(key: string): Promise<Buffer | null>;
  /** Durable when the promise resolves: a crash after that never loses the write. */
  put(key: string, value: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every key that starts with `prefix`, in ascending byte order. */
  list(prefix: string): Promise<string[]>;
  /**
   * All checks hold and all writes apply, or nothing applies. Returns false (and writes nothing)
   * when a check fails. Durable when it resolves true.
   */
  atomic(checks: readonly StorageCheck[], writes: readonly StorageWrite[]): Promise<boolean>;
  /**
   * Every record, ascending by key (byte order), as of one consistent moment: the first `next()`
   * of its iterator. Writes that completed before `snapshot()` was called are all in it; writes
   * issued after that first `next()` resolved are not. Writes go on meanwhile (for backups);
   * breaking out of the loop releases what the snapshot holds.
   */
  snapshot(): AsyncIterable<StorageEntry>;
  close(): Promise<void>;
}
