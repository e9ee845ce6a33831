import { schemeOf, type Custody, type PendingVersion } from './protection/scheme.js';
import type { KeyRecord, KeyVersionRecord } from './types.js';

export type { PendingVersion };

/**
 * Makes the material for one new version, as the key's protection does it (protection/scheme.ts):
 * generated inside the token, or generated in memory and kept until `release` so it can be wrapped
 * for the version it is finally committed as. `version` is the one expected.
 */
export async function prepareVersion(custody: Custody, record: Pick<KeyRecord, 'id' | 'type' | 'protection'>, version: number): Promise<PendingVersion> {
  return schemeOf(record.protection).prepare(custody, record, version);
}

/** The record entry of a version made and committed as `version` at once (key creation). */
export async function createVersionMaterial(custody: Custody, record: Pick<KeyRecord, 'id' | 'type' | 'protection'>, version: number): Promise<KeyVersionRecord> {
  const pending = await prepareVersion(custody, record, version);
  try {
    return await pending.entryFor(version);
  } finally {
    pending.release();
  }
}

/** Removes the HSM objects of versions that will not be recorded (a lost race) or of a deleted key. */
export async function destroyVersionMaterial(custody: Custody, record: Pick<KeyRecord, 'type' | 'protection'>, versions: KeyVersionRecord[]): Promise<void> {
  await schemeOf(record.protection).destroy(custody, record, versions);
}
