import { KeyholdError } from '../errors.js';
import type { SecretStore } from './store.js';
import { dataPath, type SecretData } from './types.js';

export interface SecretVersion {
  data: SecretData;
  version: number;
  created_at: string;
}

/** Reads one version (default: the current one); deleted and destroyed versions are refused with their own codes. */
export async function getSecret(store: SecretStore, path: string, version?: number): Promise<SecretVersion> {
  const meta = await store.requireMeta(path);
  const wanted = version ?? meta.currentVersion;
  const entry = meta.versions[String(wanted)];
  if (!entry) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" has no version ${wanted}`);
  if (entry.destroyed) throw new KeyholdError('ERR_SECRET_VERSION_DESTROYED', `version ${wanted} of secret "${path}" was destroyed`);
  if (entry.deletedAt) throw new KeyholdError('ERR_SECRET_VERSION_DELETED', `version ${wanted} of secret "${path}" was deleted at ${entry.deletedAt}; undelete it to read`);
  const data = await store.view.get<SecretData>(dataPath(path, wanted));
  if (!data) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" has no data for version ${wanted}`);
  return { data, version: wanted, created_at: entry.createdAt };
}
