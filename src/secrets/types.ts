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

export function metaPath(path: string): string {
  return `secrets/meta/${path}`;
}

/** Data of version n lives at `secrets/data/<path>/<n>`: a secret's path plus a final numeric segment, so no two (path, version) pairs share a record. */
export function dataPath(path: string, version: number): string {
  return `secrets/data/${path}/${version}`;
}
