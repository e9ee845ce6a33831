import { KeyholdError } from '../errors.js';
import type { SecretStore } from './store.js';
import { dataPath, type SecretMeta } from './types.js';

function requireVersions(path: string, meta: SecretMeta | null, versions: number[]): SecretMeta {
  if (!meta) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
  for (const v of versions) {
    if (!meta.versions[String(v)]) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" has no version ${v}`);
  }
  return meta;
}

/** Soft delete: the data stays (undelete brings it back) but reads are refused. Default: the current version. */
export async function deleteVersions(store: SecretStore, path: string, versions?: number[]): Promise<number[]> {
  return store.change(path, (current) => {
    const targets = versions ?? (current ? [current.currentVersion] : []);
    const meta = structuredClone(requireVersions(path, current, targets));
    const now = new Date().toISOString();
    for (const v of targets) {
      const entry = meta.versions[String(v)];
      if (entry && !entry.destroyed && !entry.deletedAt) entry.deletedAt = now;
    }
    meta.updatedAt = now;
    return { meta, result: targets };
  });
}

export async function undeleteVersions(store: SecretStore, path: string, versions: number[]): Promise<number[]> {
  return store.change(path, (current) => {
    const meta = structuredClone(requireVersions(path, current, versions));
    for (const v of versions) {
      const entry = meta.versions[String(v)];
      if (entry && !entry.destroyed) delete entry.deletedAt;
    }
    meta.updatedAt = new Date().toISOString();
    return { meta, result: versions };
  });
}

/** Permanent: the data records are removed; only the fact that the version existed remains. */
export async function destroyVersions(store: SecretStore, path: string, versions: number[]): Promise<number[]> {
  return store.change(path, (current) => {
    const meta = structuredClone(requireVersions(path, current, versions));
    for (const v of versions) {
      const entry = meta.versions[String(v)];
      if (entry) entry.destroyed = true;
    }
    meta.updatedAt = new Date().toISOString();
    return { meta, writes: versions.map((v) => ({ path: dataPath(path, v), delete: true as const })), result: versions };
  });
}

/** Removes every version and the metadata. */
export async function deleteSecretCompletely(store: SecretStore, path: string): Promise<void> {
  await store.change(path, (current) => {
    if (!current) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
    const writes = Object.keys(current.versions).map((v) => ({ path: dataPath(path, Number(v)), delete: true as const }));
    return { meta: null, writes, result: undefined };
  });
}
