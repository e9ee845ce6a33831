import { KeyholdError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { SEAL_RECORD_KEY, type SealRecord } from './seal.js';

/** The seal record with its exact stored bytes, for a compare-and-set rewrite. */
export async function readSealRecordRaw(storage: Storage): Promise<{ record: SealRecord; raw: Buffer } | null> {
  const raw = await storage.get(SEAL_RECORD_KEY);
  if (!raw) return null;
  try {
    return { record: JSON.parse(raw.toString('utf8')) as SealRecord, raw };
  } catch (cause) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record in storage is not valid JSON', { cause });
  }
}

/**
 * Replaces the seal record only if it still has the bytes `expected` (compare-and-set): a
 * concurrent rewrite (another migration, a rotation) makes this one lose, and say so (false).
 */
export async function replaceSealRecord(storage: Storage, expected: Buffer, record: SealRecord): Promise<boolean> {
  return storage.atomic([{ key: SEAL_RECORD_KEY, value: expected }], [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(record)) }]);
}
