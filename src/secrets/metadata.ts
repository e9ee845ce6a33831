import { KeyholdError } from '../errors.js';
import type { SecretStore } from './store.js';
import { DEFAULT_MAX_VERSIONS, metaPath } from './types.js';

export interface SecretMetadataView {
  current_version: number;
  oldest_version: number;
  max_versions: number;
  cas_required: boolean;
  created_at: string;
  updated_at: string;
  versions: Record<string, { created_at: string; deleted_at?: string; destroyed: boolean }>;
}

export async function readMetadata(store: SecretStore, path: string): Promise<SecretMetadataView> {
  const meta = await store.requireMeta(path);
  return {
    current_version: meta.currentVersion,
    oldest_version: meta.oldestVersion,
    max_versions: meta.maxVersions || DEFAULT_MAX_VERSIONS,
    cas_required: meta.casRequired,
    created_at: meta.createdAt,
    updated_at: meta.updatedAt,
    versions: Object.fromEntries(Object.entries(meta.versions).map(([v, e]) => [v, { created_at: e.createdAt, ...(e.deletedAt ? { deleted_at: e.deletedAt } : {}), destroyed: e.destroyed }])),
  };
}

export async function configureMetadata(store: SecretStore, path: string, input: { maxVersions?: number; casRequired?: boolean }): Promise<void> {
  await store.change(path, (current) => {
    if (!current) throw new KeyholdError('ERR_SECRET_NOT_FOUND', `secret "${path}" does not exist`);
    const meta = { ...current, updatedAt: new Date().toISOString() };
    if (input.maxVersions !== undefined) meta.maxVersions = input.maxVersions;
    if (input.casRequired !== undefined) meta.casRequired = input.casRequired;
    return { meta, result: undefined };
  });
}

/** Immediate children of a folder: secret names, and sub-folders with a trailing '/'. */
export async function listSecrets(store: SecretStore, folder: string): Promise<string[]> {
  const prefix = folder === '' ? metaPath('') : metaPath(folder.replace(/\/?$/, '/'));
  const names = new Set<string>();
  for (const path of await store.view.list(prefix)) {
    const rest = path.slice(prefix.length);
    const slash = rest.indexOf('/');
    names.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return [...names];
}
