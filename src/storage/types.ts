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

export interface Storage {
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
  close(): Promise<void>;
}
