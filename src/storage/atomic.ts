import type { StorageCheck, StorageWrite } from './types.js';

/** A synchronous store's primitives, inside a transaction its caller holds. */
export interface SyncStoreOps {
  get(key: string): Buffer | null;
  put(key: string, value: Buffer): void;
  delete(key: string): void;
}

/**
 * The body of Storage.atomic for a synchronous store (SQLite in a transaction, memory): every check
 * holds (the key's bytes equal `value`, null meaning absent), then every write applies, in order.
 * False, with nothing written, when a check fails.
 */
export function applyAtomic(ops: SyncStoreOps, checks: readonly StorageCheck[], writes: readonly StorageWrite[]): boolean {
  for (const check of checks) {
    const current = ops.get(check.key);
    const holds = current === null || check.value === null ? current === check.value : current.equals(check.value);
    if (!holds) return false;
  }
  for (const w of writes) {
    if (w.op === 'put') ops.put(w.key, w.value);
    else ops.delete(w.key);
  }
  return true;
}
