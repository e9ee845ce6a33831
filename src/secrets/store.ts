import { assertLogicalPath } from '../barrier/paths.js';
import type { BarrierView, ViewWrite } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { MAX_SECRET_PATH_LENGTH, metaPath, type SecretMeta } from './types.js';

function assertSecretPath(path: string): void {
  assertLogicalPath(path, 'secret path');
  if (path.length > MAX_SECRET_PATH_LENGTH) throw new KeyholdError('ERR_BAD_REQUEST', `secret path must be at most ${MAX_SECRET_PATH_LENGTH} characters`);
}

/**
 * Secrets through the secrets view. Metadata is read through the barrier's shared cache, which
 * keeps a read of the latest version to one storage read (its data); every change evicts there.
 */
export class SecretStore {
  constructor(readonly view: BarrierView) {}

  async meta(path: string): Promise<SecretMeta | null> {
    assertSecretPath(path);
    const key = metaPath(path);
    // peek first: a hit costs no further await on the read path (undefined on a shared store).
    return this.view.peek<SecretMeta>(key) ?? this.view.cached<SecretMeta>(key);
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
  async change<R>(path: string, fn: (current: SecretMeta | null) => { meta: SecretMeta | null; writes?: ViewWrite[]; result: R }): Promise<R> {
    assertSecretPath(path);
    const key = metaPath(path);
    return this.view.update<SecretMeta, R>(key, (current) => {
      const { meta, writes = [], result } = fn(current);
      return { writes: [...writes, meta ? this.view.write(key, meta) : this.view.remove(key)], result };
    });
  }
}
