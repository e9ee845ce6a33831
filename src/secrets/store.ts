import type { Barrier, BarrierWrite } from '../barrier/barrier.js';
import { assertLogicalPath } from '../barrier/paths.js';
import { KeyholdError } from '../errors.js';
import { watchBarrierPaths } from '../storage/change-watch.js';
import { MAX_SECRET_PATH_LENGTH, metaPath, type SecretMeta } from './types.js';

const MAX_CACHED = 10_000;

function assertSecretPath(path: string): void {
  assertLogicalPath(path, 'secret path');
  if (path.length > MAX_SECRET_PATH_LENGTH) throw new KeyholdError('ERR_BAD_REQUEST', `secret path must be at most ${MAX_SECRET_PATH_LENGTH} characters`);
}

/**
 * Secret metadata through the barrier. A bounded in-memory copy keeps a read of the latest
 * version to one storage read (its data); every write here refreshes the copy.
 */
export class SecretStore {
  private readonly metaCache = new Map<string, SecretMeta>();
  /** Bumped around every change: a read that overlapped a change does not cache what it saw. */
  private generation = 0;

  constructor(readonly barrier: Barrier) {
    // Another replica's write: forget what it changed, and let no overlapping read cache the old value.
    watchBarrierPaths(barrier.changes, 'secrets/meta/', (paths) => {
      this.generation++;
      if (paths === 'all') this.metaCache.clear();
      else for (const p of paths) this.metaCache.delete(p.slice('secrets/meta/'.length));
    });
  }

  async meta(path: string): Promise<SecretMeta | null> {
    assertSecretPath(path);
    const cached = this.metaCache.get(path);
    if (cached) return cached;
    const generation = this.generation;
    const meta = await this.barrier.getJson<SecretMeta>(metaPath(path));
    if (meta && generation === this.generation) this.remember(path, meta);
    return meta;
  }

  async requireMeta(path: string): Promise<SecretMeta> {
    const meta = await this.meta(path);
    if (!meta) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
    return meta;
  }

  /**
   * Atomic read-modify-write keyed on the metadata record: `fn` returns the new metadata (null
   * deletes it) and any data writes that go with it, applied together or not at all.
   */
  async change<R>(path: string, fn: (current: SecretMeta | null) => { meta: SecretMeta | null; writes?: BarrierWrite[]; result: R }): Promise<R> {
    assertSecretPath(path);
    this.generation++;
    try {
      const { meta, result } = await this.barrier.update<SecretMeta, { meta: SecretMeta | null; result: R }>(metaPath(path), (current) => {
        const { meta, writes = [], result } = fn(current);
        const metaWrite: BarrierWrite = meta ? { path: metaPath(path), value: meta } : { path: metaPath(path), delete: true };
        return { writes: [...writes, metaWrite], result: { meta, result } };
      });
      if (meta) this.remember(path, meta);
      else this.metaCache.delete(path);
      return result;
    } catch (err) {
      this.metaCache.delete(path);
      throw err;
    } finally {
      this.generation++;
    }
  }

  private remember(path: string, meta: SecretMeta): void {
    if (this.metaCache.size >= MAX_CACHED) {
      const oldest = this.metaCache.keys().next().value;
      if (oldest !== undefined) this.metaCache.delete(oldest);
    }
    this.metaCache.set(path, meta);
  }
}
