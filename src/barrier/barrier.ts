import { createSecretKey, type KeyObject } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import type { Storage, StorageCheck, StorageWrite } from '../storage/types.js';
import type { Mount } from './mounts.js';
import { assertLogicalPath } from './paths.js';
import { ReadCache } from './read-cache.js';
import { FIRST_GENERATION, MAX_GENERATION, openRecord, recordGeneration, sealRecord } from './record.js';
import { BarrierView } from './view.js';

/** Barrier records live under this storage prefix; the seal record lives beside it, outside. */
export const DATA_PREFIX = 'data/';
const MAX_CAS_ATTEMPTS = 64;

/** A read that remembers the exact stored bytes, so a later write can be made conditional on them. */
export interface BarrierRead<T> {
  path: string;
  value: T | null;
  raw: Buffer | null;
}

export type BarrierWrite = { readonly path: string; readonly value: unknown } | { readonly path: string; readonly delete: true };

/** What `reseal` did with one stored record. */
export type ResealOutcome = 'current' | 'rewritten' | 'changed' | 'newer';

export interface BarrierOptions {
  /** Generation of `rootKey`, named by every record written (default 1: the seal's first root key). */
  generation?: number;
  /** Root keys of older generations, by generation: their records stay readable after a rotation. */
  previousKeys?: ReadonlyMap<number, Buffer>;
  /** Bound of the shared read cache. */
  cacheEntries?: number;
}

function keyObject(key: Buffer): KeyObject {
  if (key.length !== 32) throw new KeyholdError('ERR_INTERNAL', 'barrier root key must be 256 bits');
  return createSecretKey(key);
}

function assertGeneration(generation: number): void {
  if (!Number.isSafeInteger(generation) || generation < FIRST_GENERATION || generation > MAX_GENERATION) throw new KeyholdError('ERR_INTERNAL', `root-key generation ${generation} is out of range`);
}

/**
 * The encrypting layer over untrusted storage. Every record is AES-256-GCM under a root key with
 * its logical path and the key's generation as AAD (src/barrier/record.ts), so a record copied to
 * another path fails to decrypt. Storage never sees a plaintext byte.
 *
 * Domains get a `view` over their own prefix, not this object; the runtime keeps it (it seals,
 * and writes the few records outside every domain). Every write, through a view or not, evicts
 * what it wrote from the one read cache.
 */
export class Barrier {
  private keys: Map<number, KeyObject> | null;
  #generation: number;
  /** A newer generation named by the seal record but not held yet (0: none); see learnNewerGeneration. */
  #newer = 0;
  /**
   * Commits in flight, by the parity of the generation they were sealed under: after a switch,
   * `writesDrained` waits until none sealed under the old key is still on its way to storage.
   * (At most two generations are written at once: a rotation waits for the previous rewrite.)
   */
  readonly #writing: [number, number] = [0, 0];
  readonly cache: ReadCache;

  constructor(private readonly storage: Storage, rootKey: Buffer, options: BarrierOptions = {}) {
    this.#generation = options.generation ?? FIRST_GENERATION;
    assertGeneration(this.#generation);
    this.keys = Barrier.keyMap(this.#generation, keyObject(rootKey), options.previousKeys);
    this.cache = new ReadCache(storage.changes, (key) => (key.startsWith(DATA_PREFIX) ? key.slice(DATA_PREFIX.length) : undefined), options.cacheEntries);
  }

  private static keyMap(generation: number, current: KeyObject, previousKeys: ReadonlyMap<number, Buffer> | undefined): Map<number, KeyObject> {
    const keys = new Map<number, KeyObject>();
    for (const [g, key] of previousKeys ?? []) {
      assertGeneration(g);
      if (g >= generation) throw new KeyholdError('ERR_INTERNAL', `previous root-key generation ${g} is not older than ${generation}`);
      keys.set(g, keyObject(key));
    }
    keys.set(generation, current);
    return keys;
  }

  /** The generation of the root key every write uses now. */
  get generation(): number {
    return this.#generation;
  }

  get sealed(): boolean {
    return this.keys === null;
  }

  /** The generations this barrier can open, ascending. */
  get generations(): number[] {
    return [...this.requireKeys().keys()].sort((a, b) => a - b);
  }

  /**
   * Switches to another root key at runtime (a rotation made here, or learnt from the seal record
   * another replica rewrote): writes from now on use `generation`; records of `previousKeys`'
   * generations stay readable. One assignment, so a write never sees half a switch. Never goes
   * back to an older generation (a late notification must not undo a newer rotation).
   */
  useRootKey(generation: number, rootKey: Buffer, previousKeys: ReadonlyMap<number, Buffer>): void {
    this.requireKeys();
    if (generation < this.#generation) throw new KeyholdError('ERR_INTERNAL', `root-key generation ${generation} is older than the current ${this.#generation}`);
    assertGeneration(generation);
    const keys = Barrier.keyMap(generation, keyObject(rootKey), previousKeys);
    this.keys = keys;
    this.#generation = generation;
  }

  /**
   * Replaces the older generations' keys (the keyring in storage changed: read at start, after a
   * switch, or emptied by the rewrite), keeping the current root key as it is held.
   */
  usePreviousKeys(previousKeys: ReadonlyMap<number, Buffer>): void {
    const current = this.requireKeys().get(this.#generation) as KeyObject;
    this.keys = Barrier.keyMap(this.#generation, current, previousKeys);
  }

  /**
   * The seal record names a newer generation than this barrier holds (another replica rotated) and
   * its key cannot be unwrapped yet (the HSM is unavailable): until `useRootKey` reaches it, writes
   * are refused. A record written under the old key now could outlive that key: the rewrite on the
   * leader may already have dropped it from the keyring.
   */
  learnNewerGeneration(generation: number): void {
    if (generation > this.#generation && generation > this.#newer) this.#newer = generation;
  }

  /** A copy of the root key of each generation held (for the keyring); the caller zeroes them. */
  exportRootKeys(): Map<number, Buffer> {
    const out = new Map<number, Buffer>();
    for (const [g, key] of this.requireKeys()) out.set(g, key.export());
    return out;
  }

  /**
   * The storage write that puts `value` at `path`, for a caller's own atomic batch: sealed under
   * the current generation, or under `as` (a rotation seals its records under the new key before
   * the commit that makes it current). The caller evicts nothing: these paths are never cached.
   */
  sealedPut(path: string, value: unknown, as?: { generation: number; rootKey: Buffer }): StorageWrite {
    assertLogicalPath(path);
    const plaintext = Buffer.from(JSON.stringify(value), 'utf8');
    try {
      const sealed = as ? sealRecord(keyObject(as.rootKey), as.generation, path, plaintext) : this.sealJsonBytes(path, plaintext);
      return { op: 'put', key: DATA_PREFIX + path, value: sealed };
    } finally {
      zeroize(plaintext);
    }
  }

  /**
   * Rewrites one stored record (`raw`, as read at `DATA_PREFIX + path`) under the current
   * generation if it names an older one, only if storage still holds exactly `raw`: a concurrent
   * write wins ('changed'), and is already under a current key. The value is unchanged, so the
   * read cache stays valid. 'newer': the record names a generation this barrier has not learnt yet.
   */
  async reseal(path: string, raw: Buffer): Promise<ResealOutcome> {
    const keys = this.requireKeys();
    const generation = this.#generation;
    const recorded = recordGeneration(path, raw);
    if (recorded === generation) return 'current';
    if (recorded > generation) return 'newer';
    const plaintext = openRecord((g) => keys.get(g), path, raw);
    try {
      const sealed = sealRecord(keys.get(generation) as KeyObject, generation, path, plaintext);
      const key = DATA_PREFIX + path;
      return (await this.storage.atomic([{ key, value: raw }], [{ op: 'put', key, value: sealed }])) ? 'rewritten' : 'changed';
    } finally {
      zeroize(plaintext);
    }
  }

  /**
   * Calls `listener` when another process sharing the store changed `path` (or may have: 'all',
   * after a lost feed). Never for this process's own writes, and never on a store of one process.
   */
  watch(path: string, listener: () => void): () => void {
    const feed = this.storage.changes;
    if (!feed) return () => undefined;
    const key = DATA_PREFIX + path;
    return feed.onChange((keys) => {
      if (keys === 'all' || keys.includes(key)) listener();
    });
  }

  /** A domain's view over its mount's prefix. */
  view(mount: Mount): BarrierView {
    return new BarrierView(this, mount);
  }

  async getJson<T>(path: string): Promise<T | null> {
    return (await this.read<T>(path)).value;
  }

  async read<T>(path: string): Promise<BarrierRead<T>> {
    assertLogicalPath(path);
    return this.readAt<T>(path);
  }

  /** `read` of a path already checked (by a view). */
  async readAt<T>(path: string): Promise<BarrierRead<T>> {
    this.requireKeys();
    const raw = await this.storage.get(DATA_PREFIX + path);
    if (!raw) return { path, value: null, raw: null };
    const plaintext = this.openStored(path, raw);
    try {
      return { path, value: JSON.parse(plaintext.toString('utf8')) as T, raw };
    } finally {
      zeroize(plaintext);
    }
  }

  /** `path` through the read cache; `checked()` returns it checked, before any storage read. */
  cachedAt<T>(path: string, checked: () => string, keepAbsent: boolean): Promise<T | null> {
    // Sealed: the cache was emptied, so this loads, and the load refuses.
    return this.cache.get<T>(path, async () => (await this.readAt<T>(checked())).value, keepAbsent);
  }

  async putJson(path: string, value: unknown): Promise<void> {
    assertLogicalPath(path);
    await this.commitWrites([], [{ path, value }]);
  }

  async delete(path: string): Promise<void> {
    assertLogicalPath(path);
    await this.commitWrites([], [{ path, delete: true }]);
  }

  /** Logical paths under `prefix` (which is itself a logical path prefix, possibly ending in '/'). */
  async list(prefix: string): Promise<string[]> {
    this.requireKeys();
    const keys = await this.storage.list(DATA_PREFIX + prefix);
    return keys.map((key) => key.slice(DATA_PREFIX.length));
  }

  /**
   * Applies `writes` only if every record in `reads` is still exactly as it was read. Returns
   * false when another writer got there first.
   */
  async commit(reads: ReadonlyArray<BarrierRead<unknown>>, writes: readonly BarrierWrite[]): Promise<boolean> {
    for (const w of writes) assertLogicalPath(w.path);
    return this.commitWrites(reads, writes);
  }

  /** `commit` of writes whose paths are already checked (by a view). */
  async commitWrites(reads: ReadonlyArray<BarrierRead<unknown>>, writes: readonly BarrierWrite[]): Promise<boolean> {
    this.requireKeys();
    const checks: StorageCheck[] = reads.map((r) => ({ key: DATA_PREFIX + r.path, value: r.raw }));
    const ops: StorageWrite[] = writes.map((w) => ('delete' in w ? { op: 'delete', key: DATA_PREFIX + w.path } : { op: 'put', key: DATA_PREFIX + w.path, value: this.sealJson(w.path, w.value) }));
    // Counted in the same tick as the sealing above: the generation counted is the one the records name.
    const slot = (this.#generation & 1) as 0 | 1;
    this.#writing[slot]++;
    // Evicted before (a hit must not outlive the commit) and after (a load that overlapped it must not be kept).
    for (const w of writes) this.cache.evict(w.path);
    try {
      const only = checks.length === 0 && ops.length === 1 ? ops[0] : undefined;
      if (!only) return await this.storage.atomic(checks, ops);
      // One unconditional write: the plain put/delete (no transaction to open).
      await (only.op === 'put' ? this.storage.put(only.key, only.value) : this.storage.delete(only.key));
      return true;
    } finally {
      this.#writing[slot]--;
      for (const w of writes) this.cache.evict(w.path);
    }
  }

  /**
   * Resolves once no commit sealed under a generation other than the current one is in flight
   * in this process (the rewrite's final pass starts after it, so it sees every such record).
   */
  async writesDrained(): Promise<void> {
    while (this.#writing[((this.#generation + 1) & 1) as 0 | 1] !== 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /**
   * Read-modify-write with optimistic concurrency: `fn` sees the current value and returns the
   * writes to make (or throws); retried when a concurrent writer changed the record.
   */
  async update<T, R>(path: string, fn: (current: T | null) => { writes: readonly BarrierWrite[]; result: R }): Promise<R> {
    assertLogicalPath(path);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.readAt<T>(path);
      const { writes, result } = fn(current.value);
      if (await this.commit([current], writes)) return result;
    }
    throw new KeyholdError('ERR_CONFLICT', `too many concurrent writers on ${path}; retry`);
  }

  /** Drops the root keys and every decrypted record from memory. */
  seal(): void {
    this.keys = null;
    this.cache.close();
  }

  private sealJson(path: string, value: unknown): Buffer {
    const plaintext = Buffer.from(JSON.stringify(value), 'utf8');
    try {
      return this.sealJsonBytes(path, plaintext);
    } finally {
      zeroize(plaintext);
    }
  }

  private sealJsonBytes(path: string, plaintext: Buffer): Buffer {
    // Key and generation read together, synchronously: a concurrent switch cannot split them.
    const keys = this.requireKeys();
    const generation = this.#generation;
    if (this.#newer > generation) throw new KeyholdError('ERR_HSM_UNAVAILABLE', `the root key was rotated to generation ${this.#newer} and the HSM is needed to unwrap it; retry`);
    return sealRecord(keys.get(generation) as KeyObject, generation, path, plaintext);
  }

  /** Opens a stored record; one under a newer generation this barrier is still waiting for is an HSM outage (503), not corruption. */
  private openStored(path: string, raw: Buffer): Buffer {
    try {
      return openRecord((generation) => this.requireKeys().get(generation), path, raw);
    } catch (err) {
      if (this.#newer > this.#generation && recordGeneration(path, raw) > this.#generation) {
        throw new KeyholdError('ERR_HSM_UNAVAILABLE', `the root key was rotated to generation ${this.#newer} and the HSM is needed to unwrap it; retry`, { cause: err });
      }
      throw err;
    }
  }

  private requireKeys(): Map<number, KeyObject> {
    if (!this.keys) throw new KeyholdError('ERR_SEALED', 'keyhold is sealed');
    return this.keys;
  }
}
