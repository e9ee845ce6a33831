import { KeyholdError } from '../errors.js';
import { applyAtomic } from './atomic.js';
import type { Storage, StorageCheck, StorageEntry, StorageWrite } from './types.js';

// Same rule as SQLite (see sqlite.ts): an unpaired surrogate has no UTF-8 form, so it is refused.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * UTF-16 code units reordered so that comparing them gives code point (= UTF-8 byte) order:
 * surrogates (code points ≥ U+10000) move above U+E000–U+FFFF. Keys are well-formed, so at the
 * first unit where two keys differ both are leads, or both are trail surrogates after the same lead.
 */
function unitRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** Ascending UTF-8 byte order, as SQLite's BINARY collation and PostgreSQL's C collation sort. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unitRank(x) - unitRank(y);
  }
  return a.length - b.length;
}

/**
 * The records of a MemoryStorage, kept apart from it so that a store can be closed and another
 * opened over the same data (what "reopen" means for memory; nothing survives the process).
 */
export class MemoryStorageData {
  /** Values are never mutated in place (copied in and out), so a snapshot may share them. */
  readonly values = new Map<string, Buffer>();
  /** Every key, ascending by compareKeys. */
  readonly keys: string[] = [];

  /** Index of the first key ≥ `key`. */
  lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.keys[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  set(key: string, value: Buffer): void {
    if (!this.values.has(key)) this.keys.splice(this.lowerBound(key), 0, key);
    this.values.set(key, Buffer.from(value));
  }

  remove(key: string): void {
    if (!this.values.delete(key)) return;
    this.keys.splice(this.lowerBound(key), 1);
  }
}

/**
 * Storage in this process's memory: for tests (domain logic without SQLite files) and for
 * throw-away servers. It keeps SQLite's semantics exactly: byte-order listing, the lone-surrogate
 * rule, all-or-nothing `atomic`, ERR_STORAGE after close. Every operation runs synchronously
 * inside its call, so writes issued together take effect in call order.
 */
export class MemoryStorage implements Storage {
  private closed = false;

  constructor(private readonly data: MemoryStorageData = new MemoryStorageData()) {}

  /** A new store over the same records (the previous one should be closed). */
  static reopen(data: MemoryStorageData): MemoryStorage {
    return new MemoryStorage(data);
  }

  /** The records this store works on, to open another MemoryStorage over them. */
  get records(): MemoryStorageData {
    return this.data;
  }

  async get(key: string): Promise<Buffer | null> {
    this.check('get', key);
    const value = this.data.values.get(key);
    return value === undefined ? null : Buffer.from(value);
  }

  async put(key: string, value: Buffer): Promise<void> {
    this.check('put', key);
    this.data.set(key, value);
  }

  async delete(key: string): Promise<void> {
    this.check('delete', key);
    this.data.remove(key);
  }

  async list(prefix: string): Promise<string[]> {
    this.check('list', prefix);
    // Keys with a prefix form one run in code point order, starting at the prefix itself.
    const out: string[] = [];
    const keys = this.data.keys;
    for (let i = this.data.lowerBound(prefix); i < keys.length && (keys[i] as string).startsWith(prefix); i++) out.push(keys[i] as string);
    return out;
  }

  async atomic(checks: readonly StorageCheck[], writes: readonly StorageWrite[]): Promise<boolean> {
    this.check('atomic');
    for (const c of checks) this.check('atomic', c.key);
    for (const w of writes) this.check('atomic', w.key);
    return applyAtomic({
      get: (key) => this.data.values.get(key) ?? null,
      put: (key, value) => this.data.set(key, value),
      delete: (key) => this.data.remove(key),
    }, checks, writes);
  }

  /**
   * Copy-on-snapshot: the key list and the value references are copied when iteration starts
   * (values are immutable once stored), so later writes are not seen.
   */
  snapshot(): AsyncIterable<StorageEntry> {
    return this.entries();
  }

  private async *entries(): AsyncGenerator<StorageEntry> {
    this.check('snapshot');
    const keys = this.data.keys.slice();
    const values = keys.map((key) => this.data.values.get(key) as Buffer);
    for (let i = 0; i < keys.length; i++) yield { key: keys[i] as string, value: Buffer.from(values[i] as Buffer) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(op: string, key?: string): void {
    if (this.closed) throw new KeyholdError('ERR_STORAGE', `memory ${op} failed: storage is closed`);
    if (key !== undefined && LONE_SURROGATE.test(key)) throw new KeyholdError('ERR_STORAGE', 'storage key is not well-formed UTF-16');
  }
}
