import type { Barrier } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';
import { watchBarrierPaths } from '../storage/change-watch.js';
import type { KeyRecord } from './types.js';

export function keyPath(name: string): string {
  return `keys/${name}`;
}

/**
 * Key records through the barrier, with an in-memory copy so the hot path (encrypt, sign) does
 * not hit storage. Every write goes through `update`, which refreshes the copy; another replica's
 * writes arrive through the store's change feed.
 */
export class KeyRecordStore {
  private readonly cache = new Map<string, KeyRecord>();
  /** Bumped around every write: a read that overlapped a write does not cache what it saw. */
  private generation = 0;

  constructor(private readonly barrier: Barrier) {
    // Another replica's write: forget what it changed, and let no overlapping read cache the old record.
    watchBarrierPaths(barrier.changes, 'keys/', (paths) => {
      this.generation++;
      if (paths === 'all') this.cache.clear();
      else for (const p of paths) this.cache.delete(p.slice('keys/'.length));
    });
  }

  async get(name: string): Promise<KeyRecord> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const generation = this.generation;
    const record = await this.barrier.getJson<KeyRecord>(keyPath(name));
    if (!record) throw new KeyholdError('ERR_KEY_NOT_FOUND', `key "${name}" does not exist`);
    if (generation === this.generation) this.cache.set(name, record);
    return record;
  }

  async list(): Promise<string[]> {
    return (await this.barrier.list('keys/')).map((path) => path.slice('keys/'.length));
  }

  /** Optimistic read-modify-write of one key record; `fn` returns the new record, or null to delete it. */
  async update<R>(name: string, fn: (current: KeyRecord | null) => { next: KeyRecord | null; result: R }): Promise<R> {
    this.generation++;
    try {
      return await this.barrier.update<KeyRecord, R>(keyPath(name), (current) => {
        const { next, result } = fn(current);
        return { writes: [next ? { path: keyPath(name), value: next } : { path: keyPath(name), delete: true }], result };
      });
    } finally {
      this.generation++;
      this.cache.delete(name);
    }
  }
}
