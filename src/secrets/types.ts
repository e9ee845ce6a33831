export type SecretData = Record<string, unknown>;

export interface SecretVersionMeta {
  createdAt: string;
  deletedAt?: string;
  destroyed: boolean;
}

export interface SecretMeta {
  currentVersion: number;
  oldestVersion: number;
  /** Versions kept; older data is destroyed on write. 0 means the server default. */
  maxVersions: number;
  casRequired: boolean;
  createdAt: string;
  updatedAt: string;
  versions: Record<string, SecretVersionMeta>;
}

export const DEFAULT_MAX_VERSIONS = 10;

/**
 * Longest secret path: its deepest record, `secrets/data/<path>/<version>` with a 9-digit version,
 * must still fit the barrier's 512-character limit. Otherwise a secret could be written up to
 * version 9 and then refuse version 10.
 */
export const MAX_SECRET_PATH_LENGTH = 512 - 'secrets/data/'.length - '/'.length - 9;

export function metaPath(path: string): string {
  return `secrets/meta/${path}`;
}

/** Data of version n lives at `secrets/data/<path>/<n>`: a secret's path plus a final numeric segment, so no two (path, version) pairs share a record. */
export function dataPath(path: string, version: number): string {
  return `secrets/data/${path}/${version}`;
}
