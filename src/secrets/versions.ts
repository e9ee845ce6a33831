import { KeyholdError } from '../errors.js';
import type { SecretStore } from './store.js';
import { dataPath, type SecretMeta, type SecretVersionMeta } from './types.js';

function requireVersions(path: string, meta: SecretMeta | null, versions: number[]): SecretMeta {
  if (!meta) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
  for (const v of versions) {
    if (!meta.versions[String(v)]) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" has no version ${v}`);
  }
  return meta;
}

/**
 * One atomic change of the flags of some versions: `mark` edits each named version's entry in a
 * copy of the metadata; `dropData` also deletes their data records.
 */
function markVersions(store: SecretStore, path: string, versions: number[] | undefined, mark: (entry: SecretVersionMeta, now: string) => void, dropData = false): Promise<number[]> {
  return store.change(path, (current) => {
    const targets = versions ?? (current ? [current.currentVersion] : []);
    const meta = structuredClone(requireVersions(path, current, targets));
    const now = new Date().toISOString();
    for (const v of targets) {
      const entry = meta.versions[String(v)];
      if (entry) mark(entry, now);
    }
    meta.updatedAt = now;
    const writes = dropData ? targets.map((v) => store.view.remove(dataPath(path, v))) : [];
    return { meta, writes, result: targets };
  });
}

/** Soft delete: the data stays (undelete brings it back) but reads are refused. Default: the current version. */
export function deleteVersions(store: SecretStore, path: string, versions?: number[]): Promise<number[]> {
  return markVersions(store, path, versions, (entry, now) => {
    if (!entry.destroyed && !entry.deletedAt) entry.deletedAt = now;
  });
}

export function undeleteVersions(store: SecretStore, path: string, versions: number[]): Promise<number[]> {
  return markVersions(store, path, versions, (entry) => {
    if (!entry.destroyed) delete entry.deletedAt;
  });
}

/** Permanent: the data records are removed; only the fact that the version existed remains. */
export function destroyVersions(store: SecretStore, path: string, versions: number[]): Promise<number[]> {
  return markVersions(store, path, versions, (entry) => {
    entry.destroyed = true;
  }, true);
}

/** Removes every version and the metadata. */
export async function deleteSecretCompletely(store: SecretStore, path: string): Promise<void> {
  await store.change(path, (current) => {
    if (!current) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
    const writes = Object.keys(current.versions).map((v) => store.view.remove(dataPath(path, Number(v))));
    return { meta: null, writes, result: undefined };
  });
}
