import { KeyholdError } from '../errors.js';
import type { Barrier, BarrierRead, BarrierWrite } from './barrier.js';
import type { Mount } from './mounts.js';
import { assertLogicalPath, MAX_PATH_LENGTH } from './paths.js';

declare const madeByView: unique symbol;
/**
 * A write made by a view (`write`, `remove`): its path is inside that view's prefix. A domain
 * cannot make one for a path outside its views, and commits take only these.
 */
export type ViewWrite = BarrierWrite & { readonly [madeByView]: true };

/**
 * One domain's window on the barrier (Vault's barrier view): every key is relative to the mount's
 * storage prefix and is checked (no '..', '.', empty or absolute segments), so a domain holding
 * only its view cannot name another domain's records. Reads through `cached`/`peek` share the
 * barrier's one read cache; every write through any view evicts what it wrote.
 */
export class BarrierView {
  readonly prefix: string;

  constructor(private readonly barrier: Barrier, mount: Mount) {
    this.prefix = mount.storage;
    assertLogicalPath(this.prefix.slice(0, -1), 'view prefix');
    if (!this.prefix.endsWith('/')) throw new KeyholdError('ERR_INTERNAL', `view prefix "${this.prefix}" must end in '/'`);
  }

  /** The full logical path of `key`, which must be a relative logical path. */
  path(key: string): string {
    assertLogicalPath(key, 'key');
    const path = this.prefix + key;
    if (path.length > MAX_PATH_LENGTH) throw new KeyholdError('ERR_BAD_REQUEST', `key "${key}" is too long`);
    return path;
  }

  /** The view-relative key of a full logical path, or undefined when the path is not inside this view. */
  own(path: string): string | undefined {
    if (!path.startsWith(this.prefix)) return undefined;
    const key = path.slice(this.prefix.length);
    try {
      this.path(key);
      return key;
    } catch {
      return undefined;
    }
  }

  /** A read that remembers the stored bytes (for `commit`); its `path` is the full logical path. */
  async read<T>(key: string): Promise<BarrierRead<T>> {
    return this.barrier.readAt<T>(this.path(key));
  }

  /** Straight from storage, not cached. */
  async get<T>(key: string): Promise<T | null> {
    return (await this.barrier.readAt<T>(this.path(key))).value;
  }

  /**
   * Through the shared read cache. Absent records are not cached unless `keepAbsent` (a flood of
   * look-ups of random names must not push real records out). Never mutate what it returns.
   */
  cached<T>(key: string, keepAbsent = false): Promise<T | null> {
    // The key is checked only on a miss (per-request paths stay cheap): cache entries are exact,
    // already-checked paths, so a malformed key can never hit one.
    return this.barrier.cachedAt<T>(this.prefix + key, () => this.path(key), keepAbsent);
  }

  /**
   * The cached value without an await, for per-request paths: undefined when not cached or when
   * the store is shared between processes (then only `cached` may answer). No key check needed:
   * cache entries are exact, already-checked paths, so a malformed key just finds nothing.
   */
  peek<T>(key: string): T | null | undefined {
    return this.barrier.cache.peek<T>(this.prefix + key);
  }

  /** See Barrier.watch: another replica changed `key`. */
  watch(key: string, listener: () => void): () => void {
    return this.barrier.watch(this.path(key), listener);
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.barrier.commitWrites([], [this.write(key, value)]);
  }

  async delete(key: string): Promise<void> {
    await this.barrier.commitWrites([], [this.remove(key)]);
  }

  /** Keys under `keyPrefix` (relative: '' for the whole view, or a key prefix ending in '/'), relative to the view. */
  async list(keyPrefix = ''): Promise<string[]> {
    if (keyPrefix !== '') this.path(keyPrefix.endsWith('/') ? keyPrefix.slice(0, -1) : keyPrefix);
    const paths = await this.barrier.list(this.prefix + keyPrefix);
    return paths.map((p) => p.slice(this.prefix.length));
  }

  write(key: string, value: unknown): ViewWrite {
    return { path: this.path(key), value } as ViewWrite;
  }

  remove(key: string): ViewWrite {
    return { path: this.path(key), delete: true } as ViewWrite;
  }

  /**
   * Applies `writes` (made by this or another view the caller holds) only if every read is still
   * exactly as it was; false when another writer got there first.
   */
  commit(reads: ReadonlyArray<BarrierRead<unknown>>, writes: readonly ViewWrite[]): Promise<boolean> {
    return this.barrier.commitWrites(reads, writes);
  }

  /** Optimistic read-modify-write of one record; `fn` returns the writes to make, retried on a concurrent change. */
  async update<T, R>(key: string, fn: (current: T | null) => { writes: ViewWrite[]; result: R }): Promise<R> {
    return this.barrier.update<T, R>(this.path(key), fn);
  }
}
