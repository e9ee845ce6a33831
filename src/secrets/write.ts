import type { ViewWrite } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { assertSecretData } from './data-limits.js';
import type { SecretStore } from './store.js';
import { DEFAULT_MAX_VERSIONS, dataPath, type SecretData, type SecretMeta } from './types.js';

/**
 * Writes a new version. `cas`: 0 means "only if the secret does not exist", N means "only if the
 * current version is N". Versions beyond max_versions are destroyed in the same atomic commit.
 */
export async function putSecret(store: SecretStore, path: string, data: SecretData, cas?: number): Promise<{ version: number; created_at: string }> {
  assertSecretData(data);
  return store.change(path, (current) => {
    const now = new Date().toISOString();
    const currentVersion = current?.currentVersion ?? 0;
    if (cas === undefined && current?.casRequired) throw new KeyholdError('ERR_CAS_MISMATCH', `secret "${path}" requires cas on every write`);
    if (cas !== undefined && cas !== currentVersion) {
      throw new KeyholdError('ERR_CAS_MISMATCH', `check-and-set failed: current version is ${currentVersion}, cas was ${cas}`, { details: { current_version: currentVersion } });
    }
    const version = currentVersion + 1;
    const meta: SecretMeta = current
      ? { ...current, currentVersion: version, updatedAt: now, versions: { ...current.versions } }
      : { currentVersion: version, oldestVersion: 1, maxVersions: 0, casRequired: false, createdAt: now, updatedAt: now, versions: {} };
    meta.versions[String(version)] = { createdAt: now, destroyed: false };
    const writes: ViewWrite[] = [store.view.write(dataPath(path, version), data)];
    const keep = meta.maxVersions || DEFAULT_MAX_VERSIONS;
    while (version - meta.oldestVersion + 1 > keep) {
      writes.push(store.view.remove(dataPath(path, meta.oldestVersion)));
      delete meta.versions[String(meta.oldestVersion)];
      meta.oldestVersion++;
    }
    return { meta, writes, result: { version, created_at: now } };
  });
}
