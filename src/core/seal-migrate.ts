/**
 * `keyhold seal migrate`: the HSM that sealed the store is lost for good; `threshold` recovery
 * shares give the root key back, and the seal moves to the token of the new config. Offline (the
 * server stopped). Every refusal about the shares comes before any write; the seal record is
 * rewritten by compare-and-set on its old bytes, and the old HSM's objects, if it still exists,
 * are not touched.
 *
 * What lived only in the lost token cannot come back, and is reported, not hidden: keys with
 * protection=hsm (and wrapped keys of a store whose wrap key was in the HSM). The audit signing
 * key is replaced at the next start, which begins a new chain linked to the old one (reason
 * `seal-migrate`), from the migration record this writes into the barrier.
 */
import { createPublicKey } from 'node:crypto';
import { openBarrier } from '../barrier/keyring.js';
import { MOUNTS } from '../barrier/mounts.js';
import { recoverRootKey, type ShareInput } from '../barrier/recovery.js';
import { holdsSealKey, materialWrapOf, protectRoot, readSealRecord, recoveryOf, replaceSealRecord, rootKeyGeneration } from '../barrier/seal.js';
import type { BarrierView } from '../barrier/view.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import { openHsm } from '../hsm/open.js';
import type { KeyRecord } from '../keys/types.js';
import type { Storage } from '../storage/types.js';
import type { ServerConfig } from './config.js';
import { openStorage, requireExistingStore, storageName } from './storage.js';

/** The migration record in the seal view: read (and removed) by the next start, which audits it. */
export const MIGRATION_KEY = 'migration';
export interface SealMigrationRecord {
  at: string;
  /** The new seal key: the record is current only while the seal record names it. */
  sealKeyLabel: string;
  fromTokenSerial: string;
  toTokenSerial: string;
  toTokenLabel: string;
  recoverySet: string;
  /** Keys whose material was in the lost token. */
  lostKeys: string[];
}

export interface LostKey {
  name: string;
  type: string;
  protection: string;
  versions: number[];
  why: string;
}

export interface SealMigrationResult {
  store: string;
  from: { tokenSerial: string; sealKeyLabel: string };
  to: { tokenLabel: string; tokenSerial: string; sealKeyLabel: string };
  rootKeyGeneration: number;
  /** Keys that work again after the migration (wrapped under the barrier's wrap key). */
  recoveredKeys: string[];
  /** Keys that do not: their material was inside the lost token. */
  lostKeys: LostKey[];
  /** Keys whose records are under an older root-key generation: not checked here (protection unknown). */
  uncheckedKeys: string[];
  audit: { oldSigningKeyFingerprint?: string; oldPublicKeyPem?: string; note: string };
}

/**
 * The key records, and the names of those this process cannot open: a record still under an older
 * root-key generation the keyring no longer holds cannot be opened; such keys are reported as
 * unchecked rather than guessed at.
 */
async function keyRecords(view: BarrierView): Promise<{ records: KeyRecord[]; unchecked: string[] }> {
  const records: KeyRecord[] = [];
  const unchecked: string[] = [];
  for (const name of await view.list()) {
    try {
      const record = await view.get<KeyRecord>(name);
      if (record) records.push(record);
    } catch (err) {
      if (!isKeyholdError(err, 'ERR_BARRIER_INTEGRITY')) throw err;
      unchecked.push(name);
    }
  }
  return { records, unchecked };
}

export async function migrateSeal(config: ServerConfig, shares: readonly ShareInput[], warn: (message: string) => void): Promise<SealMigrationResult> {
  requireExistingStore(config.storage);
  // The new token first: a wrong PIN or module fails before the store is opened.
  const hsm = await openHsm(config.hsm, { warn });
  let storage: Storage | undefined;
  try {
    storage = await openStorage(config.storage, { warn });
    const current = await readSealRecord(storage);
    if (!current) throw new KeyholdError('ERR_NOT_INITIALIZED', `${storageName(config.storage)} is not initialised`);
    const old = current.record;
    const recovery = recoveryOf(old);
    if (!recovery) throw new KeyholdError('ERR_NOT_SUPPORTED', 'this store was initialised without recovery shares: its seal can only be opened by the HSM that sealed it (restore that token from its backup)');
    // Initialisation with recovery shares always chooses the in-memory wrap: an HSM wrap key here would name a key the new token lacks.
    if (materialWrapOf(old).mode !== 'memory') throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record has recovery shares but an HSM wrap key, which initialisation never writes; nothing was written');
    if (holdsSealKey(hsm, old)) {
      throw new KeyholdError('ERR_CONFLICT', `token "${hsm.token.label}" still holds this store's seal key "${old.sealKeyLabel}": it is the HSM that sealed the store, not a new one; nothing was written`);
    }
    const generation = rootKeyGeneration(old);
    // Every refusal about the shares happens here, before anything is written.
    const rootKey = await recoverRootKey(recovery, generation, shares);
    // With the keyring's older root keys: records a rotation's rewrite has not reached yet open too.
    const { barrier } = await openBarrier(storage, { rootKey, generation });
    try {
      // The root key is proven (key check, then its authenticated recovery copy); this is a store that finished its init.
      if (!(await barrier.list('sys/initialized')).includes('sys/initialized')) throw new KeyholdError('ERR_NOT_INITIALIZED', 'this store never finished its initialisation');
      const recoveredKeys: string[] = [];
      const lostKeys: LostKey[] = [];
      const { records, unchecked } = await keyRecords(barrier.view(MOUNTS.keys));
      for (const record of records) {
        if (record.protection !== 'hsm') {
          recoveredKeys.push(record.name);
          continue;
        }
        lostKeys.push({
          name: record.name,
          type: record.type,
          protection: record.protection,
          versions: Object.keys(record.versions).map(Number).sort((a, b) => a - b),
          why: 'protection=hsm: the key material existed only inside the lost token',
        });
      }
      const signing = await barrier.view(MOUNTS.audit).get<{ spki: string; fingerprint: string }>('signing-key').catch((err: unknown) => {
        if (isKeyholdError(err, 'ERR_BARRIER_INTEGRITY')) return null;
        throw err;
      });
      // AES-GCM or RSA-OAEP as the new token can (probed), data-object mode as before, the wrap in memory.
      const { record: next, discard } = await protectRoot(hsm, rootKey, generation, old, { wrap: { mode: 'memory' } });
      if (next.version !== 2) throw new KeyholdError('ERR_INTERNAL', 'protectRoot wrote a version 1 seal record');
      // The same root key, generation and R: the recovery copy stays valid as it is (protectRoot never carries it over).
      next.recovery = recovery;
      const seal = barrier.view(MOUNTS.seal);
      const marker: SealMigrationRecord = {
        at: new Date().toISOString(),
        sealKeyLabel: next.sealKeyLabel,
        fromTokenSerial: old.tokenSerial,
        toTokenSerial: hsm.token.serial,
        toTokenLabel: hsm.token.label,
        recoverySet: recovery.setId,
        lostKeys: lostKeys.map((k) => k.name),
      };
      try {
        // The marker first: it counts only while the seal record names its seal key, so a lost
        // compare-and-set below leaves a marker that the next start recognises as stale.
        await seal.put(MIGRATION_KEY, marker);
        if (!(await replaceSealRecord(storage, current.raw, next))) {
          await seal.delete(MIGRATION_KEY).catch(() => undefined);
          throw new KeyholdError('ERR_CONFLICT', 'the seal record changed while migrating (a running server or another migration?); nothing was migrated');
        }
      } catch (err) {
        await discard().catch(() => undefined);
        throw err;
      }
      return {
        store: storageName(config.storage),
        from: { tokenSerial: old.tokenSerial, sealKeyLabel: old.sealKeyLabel },
        to: { tokenLabel: hsm.token.label, tokenSerial: hsm.token.serial, sealKeyLabel: next.sealKeyLabel },
        rootKeyGeneration: generation,
        recoveredKeys,
        lostKeys,
        uncheckedKeys: unchecked,
        audit: {
          ...(signing ? {
            oldSigningKeyFingerprint: signing.fingerprint,
            oldPublicKeyPem: createPublicKey({ key: Buffer.from(signing.spki, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString(),
          } : {}),
          note: 'the next start creates a new audit signing key on the new token and begins a new chain linked to the old one (reason seal-migrate); keep the old public key to verify the old chain offline',
        },
      };
    } finally {
      barrier.seal();
      zeroize(rootKey);
    }
  } finally {
    await storage?.close().catch(() => undefined);
    await hsm.close();
  }
}
