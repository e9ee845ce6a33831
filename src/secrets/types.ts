import { MOUNTS, policyPath } from '../barrier/mounts.js';
import { MAX_PATH_LENGTH } from '../barrier/paths.js';

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
 * Where a secret lives, all from one mount (src/barrier/mounts.ts): the policy path `secrets/<path>`
 * guards both of its records in the secrets view, `meta/<path>` and `data/<path>/<version>`.
 */
export const secretPolicyPath = (path: string): string => policyPath(MOUNTS.secrets, path);

/** The metadata record, in the secrets view. */
export function metaPath(path: string): string {
  return `meta/${path}`;
}

/** Data of version n lives at `data/<path>/<n>`: a secret's path plus a final numeric segment, so no two (path, version) pairs share a record. */
export function dataPath(path: string, version: number): string {
  return `data/${path}/${version}`;
}

/**
 * Longest secret path: its deepest record, `secrets/data/<path>/<version>` with a 9-digit version,
 * must still fit the barrier's 512-character limit. Otherwise a secret could be written up to
 * version 9 and then refuse version 10.
 */
export const MAX_SECRET_PATH_LENGTH = MAX_PATH_LENGTH - MOUNTS.secrets.storage.length - dataPath('', 0).length - 8;
