import { KeyholdError } from '../errors.js';
import type { KeyRecord } from './types.js';

/** The version a new encryption or signature uses. */
export function currentVersion(record: KeyRecord): number {
  if (record.disabled) throw new KeyholdError('ERR_KEY_DISABLED', `key "${record.name}" is disabled`);
  return record.latestVersion;
}

/** Checks a version named by a ciphertext or signature may still be used to decrypt or verify. */
export function readableVersion(record: KeyRecord, version: number): number {
  if (record.disabled) throw new KeyholdError('ERR_KEY_DISABLED', `key "${record.name}" is disabled`);
  if (!record.versions[String(version)]) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `key "${record.name}" has no version ${version}`);
  if (version < record.minDecryptionVersion) {
    throw new KeyholdError('ERR_KEY_VERSION_RETIRED', `version ${version} of key "${record.name}" is retired (minimum ${record.minDecryptionVersion})`);
  }
  return version;
}
