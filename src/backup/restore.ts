import { createHash } from 'node:crypto';
import { Barrier } from '../barrier/barrier.js';
import { SEAL_RECORD_KEY, unseal } from '../barrier/seal.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage, StorageWrite } from '../storage/types.js';
import { BACKUP_HEADER, encodeRecord, endOfRecords, type BackupManifest } from './format.js';
import type { Progress } from './progress.js';
import { BackupFile } from './read.js';

/** Records per atomic batch, and bytes: bounded memory, few commits. */
const BATCH_RECORDS = 512;
const BATCH_BYTES = 4 * 1024 * 1024;
/** A barrier record every initialised store has: decrypting it proves the root key, not only its unwrap. */
const PROBE_PATH = 'sys/initialized';
const PROBE_KEY = `data/${PROBE_PATH}`;

export interface RestoreResult {
  manifest: BackupManifest;
  records: number;
}

/**
 * The HSM must unseal what the backup holds: the seal record (and a barrier record, when there is
 * one) are put in a throw-away memory store and unsealed there, before the target is touched.
 */
async function proveHsm(hsm: Hsm, manifest: BackupManifest, kept: Map<string, Buffer>, where: string): Promise<void> {
  const probe = new MemoryStorage();
  for (const [key, value] of kept) await probe.put(key, value);
  await unsealAndRead(probe, hsm, manifest, where, kept.has(PROBE_KEY));
  await probe.close();
}

async function unsealAndRead(storage: Storage, hsm: Hsm, manifest: BackupManifest, where: string, probe: boolean): Promise<void> {
  const objects = manifest.seal ? [manifest.seal.sealKeyLabel, manifest.seal.wrapKeyLabel, manifest.seal.rootKeyObject].filter((label) => typeof label === 'string') : [];
  const sealedBy = manifest.seal ? ` (sealed with HSM objects ${objects.join(', ')} of token serial ${manifest.seal.tokenSerial})` : '';
  let rootKey: Buffer | undefined;
  try {
    rootKey = (await unseal(storage, hsm)).rootKey;
    if (probe) {
      const barrier = new Barrier(storage, rootKey);
      await barrier.getJson(PROBE_PATH);
      barrier.seal();
    }
  } catch (err) {
    const code = isKeyholdError(err) ? err.code : 'ERR_BARRIER_INTEGRITY';
    throw new KeyholdError(code, `the configured HSM cannot unseal ${where}${sealedBy}: ${(err as Error).message}. Restore needs the HSM that sealed the backup (restoring with recovery shares is not supported yet)`, { cause: err });
  } finally {
    zeroize(rootKey);
  }
}

async function isEmpty(storage: Storage): Promise<boolean> {
  for await (const _ of storage.snapshot()) return false;
  return true;
}

/** Digest of the target read back, framed as in the backup: equal to the manifest's only if every record is. */
async function digestOf(storage: Storage): Promise<string> {
  const hash = createHash('sha256');
  hash.update(BACKUP_HEADER);
  for await (const { key, value } of storage.snapshot()) for (const part of encodeRecord(key, value)) hash.update(part);
  hash.update(endOfRecords());
  return hash.digest('hex');
}

/**
 * Restores a backup into an empty store (opened by `openTarget`, closed at the end), over the Storage interface only (so any store can be the
 * target of a backup from any other). In order, and writing nothing until the last check passed:
 * the whole file is verified (checksum, format, order, counts); the configured HSM must unseal the
 * backup's seal record; the target must be empty. Records then go in as atomic batches, each one
 * conditional on the target still having no seal record, the seal record last, so a store with a
 * partial restore never looks initialised; a failed batch removes what was written. At the end the
 * target is read back (digest equal to the manifest's) and unsealed.
 */
export async function restoreBackup(path: string, openTarget: () => Storage | Promise<Storage>, hsm: Hsm, progress?: Progress): Promise<RestoreResult> {
  const backup = await BackupFile.open(path);
  let target: Storage | undefined;
  try {
    const { manifest } = backup;
    const kept = await backup.verify([SEAL_RECORD_KEY, PROBE_KEY]);
    if (!kept.has(SEAL_RECORD_KEY)) throw new KeyholdError('ERR_BACKUP_INVALID', 'the backup has no seal record');
    await proveHsm(hsm, manifest, kept, 'this backup');
    // Opened only now: a damaged backup or the wrong HSM does not even create the target.
    const store = await openTarget();
    target = store;
    if (!(await isEmpty(store))) {
      throw new KeyholdError('ERR_STORE_NOT_EMPTY', 'the target store is not empty; restore only writes into an empty store (nothing was written)');
    }

    const written: string[] = [];
    const noSeal = [{ key: SEAL_RECORD_KEY, value: null }];
    let batch: StorageWrite[] = [];
    let batchBytes = 0;
    let records = 0;
    let bytes = 0;
    const commit = async (writes: StorageWrite[]): Promise<void> => {
      if (writes.length === 0) return;
      if (!(await store.atomic(noSeal, writes))) throw new KeyholdError('ERR_CONFLICT', 'the target store was initialised by someone else during the restore');
      for (const w of writes) written.push(w.key);
    };
    try {
      let seal: Buffer | undefined;
      for await (const { key, value } of backup.records()) {
        records++;
        bytes += Buffer.byteLength(key, 'utf8') + value.length;
        if (key === SEAL_RECORD_KEY) {
          seal = value;
          continue;
        }
        batch.push({ op: 'put', key, value });
        batchBytes += value.length;
        if (batch.length >= BATCH_RECORDS || batchBytes >= BATCH_BYTES) {
          await commit(batch);
          batch = [];
          batchBytes = 0;
          progress?.update(records, bytes);
        }
      }
      await commit([...batch, { op: 'put', key: SEAL_RECORD_KEY, value: seal as Buffer }]);
      progress?.done(records, bytes);
    } catch (err) {
      const left = await removeWritten(store, written);
      if (left === 0 || !isKeyholdError(err)) throw err;
      throw new KeyholdError(err.code, `${err.message}; ${left} restored records could not be removed again: empty the target store before retrying`, { cause: err });
    }

    if ((await digestOf(store)) !== manifest.sha256) {
      throw new KeyholdError('ERR_STORAGE', 'the restored store does not read back as the backup (another writer, or a storage fault): empty it and restore again');
    }
    await unsealAndRead(store, hsm, manifest, 'the restored store', kept.has(PROBE_KEY));
    return { manifest, records };
  } finally {
    await target?.close();
    await backup.close();
  }
}

/** After a failed restore: the target goes back to empty. Returns how many records are left. */
async function removeWritten(target: Storage, keys: string[]): Promise<number> {
  for (let i = 0; i < keys.length; i += BATCH_RECORDS) {
    const writes = keys.slice(i, i + BATCH_RECORDS).map((key): StorageWrite => ({ op: 'delete', key }));
    try {
      await target.atomic([], writes);
    } catch {
      return keys.length - i;
    }
  }
  return 0;
}
