import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import type { KeyRecord } from './types.js';

/**
 * Key records through the keys view (`keys/<name>`), read through the barrier's shared cache so
 * the hot path (encrypt, sign) does not hit storage; every write evicts there.
 */
export class KeyRecordStore {
  constructor(private readonly view: BarrierView) {}

  async get(name: string): Promise<KeyRecord> {
    // peek first: a hit costs no further await on the encrypt/sign path (undefined on a shared store).
    const record = this.view.peek<KeyRecord>(name) ?? await this.view.cached<KeyRecord>(name);
    if (!record) throw new KeyholdError('ERR_KEY_NOT_FOUND', `key "${name}" does not exist`);
    return record;
  }

  list(): Promise<string[]> {
    return this.view.list();
  }

  /** Optimistic read-modify-write of one key record; `fn` returns the new record, or null to delete it. */
  update<R>(name: string, fn: (current: KeyRecord | null) => { next: KeyRecord | null; result: R }): Promise<R> {
    return this.view.update<KeyRecord, R>(name, (current) => {
      const { next, result } = fn(current);
      return { writes: [next ? this.view.write(name, next) : this.view.remove(name)], result };
    });
  }
}
