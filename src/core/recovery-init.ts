import type { Barrier } from '../barrier/barrier.js';
import { MOUNTS } from '../barrier/mounts.js';
import { createRecovery, RECOVERY_KEY_KEY } from '../barrier/recovery.js';
import { readSealRecord, replaceSealRecord, type Unsealed } from '../barrier/seal.js';
import { KeyholdError } from '../errors.js';
import type { Storage } from '../storage/types.js';

/** What `keyhold init` hands the custodians: printed once, stored nowhere. */
export interface RecoveryShareSet {
  setId: string;
  shares: number;
  threshold: number;
  /** One per custodian, in order (position 1..shares is inside each share too). */
  list: string[];
}

/**
 * At initialisation: a new recovery key R in the barrier, the root key wrapped under it in the seal
 * record (compare-and-set), and R's shares returned for printing. R is written to the barrier
 * first: a seal record naming a recovery set whose R the barrier lacks could never be re-wrapped
 * by a root rotation. A crash between the two leaves an init that the next `keyhold init` redoes
 * (the store is not yet `sys/initialized`), with a new R and new shares.
 */
export async function setUpRecovery(storage: Storage, barrier: Barrier, unsealed: Unsealed, shares: number, threshold: number): Promise<RecoveryShareSet> {
  const created = await createRecovery(unsealed.rootKey, unsealed.generation, shares, threshold);
  await barrier.view(MOUNTS.seal).put(RECOVERY_KEY_KEY, created.barrierRecord);
  created.barrierRecord.key = '';
  const current = await readSealRecord(storage);
  // initializeSeal writes version 2 records only; anything else was not made by this initialisation.
  if (!current || current.record.version !== 2 || unsealed.record.version !== 2 || current.record.sealKeyLabel !== unsealed.record.sealKeyLabel) {
    throw new KeyholdError('ERR_CONFLICT', 'the seal record changed during initialisation');
  }
  if (!(await replaceSealRecord(storage, current.raw, { ...current.record, recovery: created.fields }))) {
    throw new KeyholdError('ERR_CONFLICT', 'another process rewrote the seal record during initialisation; run keyhold init again');
  }
  unsealed.record.recovery = created.fields;
  return { setId: created.fields.setId, shares, threshold, list: created.shares };
}
