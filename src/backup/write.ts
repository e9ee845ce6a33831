import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { materialWrapOf, SEAL_RECORD_KEY, type SealRecord } from '../barrier/seal.js';
import { KeyholdError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import {
  BACKUP_FORMAT_VERSION, BACKUP_HEADER, countKeysOf, encodeRecord, endOfRecords, trailer, type BackupManifest,
} from './format.js';
import type { Progress } from './progress.js';

/** Output is gathered into writes of about this size. */
const WRITE_BYTES = 1024 * 1024;

/** What the seal record tells the manifest: the HSM keys a restore needs, and the root key generation. */
function sealFacts(raw: Buffer): Pick<BackupManifest, 'seal' | 'rootKeyGeneration'> {
  try {
    const record = JSON.parse(raw.toString('utf8')) as SealRecord;
    // The seal record names the root key's generation (barrier/seal.ts); a record from before generations is generation 1.
    const generation = record.rootKeyGeneration ?? 1;
    const wrap = materialWrapOf(record);
    const seal: NonNullable<BackupManifest['seal']> = { sealKeyLabel: String(record.sealKeyLabel), wrapKeyLabel: wrap.mode === 'hsm' ? String(wrap.keyLabel) : null, tokenSerial: String(record.tokenSerial) };
    if (record.version === 2 && typeof record.rootKeyObject === 'string') seal.rootKeyObject = record.rootKeyObject;
    return {
      seal,
      rootKeyGeneration: typeof generation === 'number' ? generation : null,
    };
  } catch {
    return { seal: null, rootKeyGeneration: null };
  }
}

/** fsync of the directory, so the rename itself survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a backup of `source`: one snapshot (a consistent moment while writes go on), records as
 * stored. The file is born 0600 under a temporary name beside the target, fsynced, then renamed
 * over it, so a crash or failure never leaves a half backup under the real name.
 */
export async function writeBackup(source: Storage, outPath: string, progress?: Progress): Promise<BackupManifest> {
  const temp = join(dirname(outPath), `.${basename(outPath)}.tmp-${randomBytes(6).toString('hex')}`);
  const file = await open(temp, 'wx', 0o600);
  let renamed = false;
  try {
    const hash = createHash('sha256');
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let position = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const chunk = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await file.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    };
    const emit = async (parts: Buffer[], hashed = true): Promise<void> => {
      for (const part of parts) {
        if (hashed) hash.update(part);
        pending.push(part);
        pendingBytes += part.length;
      }
      if (pendingBytes >= WRITE_BYTES) await flush();
    };

    const createdAt = new Date().toISOString();
    const counts: Record<string, number> = {};
    let facts: Pick<BackupManifest, 'seal' | 'rootKeyGeneration'> = { seal: null, rootKeyGeneration: null };
    let records = 0;
    let bytes = 0;
    await emit([BACKUP_HEADER]);
    for await (const { key, value } of source.snapshot()) {
      if (key === SEAL_RECORD_KEY) facts = sealFacts(value);
      await emit(encodeRecord(key, value));
      records++;
      bytes += Buffer.byteLength(key, 'utf8') + value.length;
      for (const name of countKeysOf(key)) counts[name] = (counts[name] ?? 0) + 1;
      progress?.update(records, bytes);
    }
    if (!facts.seal) throw new KeyholdError('ERR_NOT_INITIALIZED', 'the store has no seal record: it is not initialised, so there is nothing to back up');
    await emit([endOfRecords()]);
    const manifest: BackupManifest = {
      format: 'keyhold-backup',
      version: BACKUP_FORMAT_VERSION,
      createdAt,
      ...facts,
      records,
      bytes,
      counts,
      sha256: hash.digest('hex'),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest), 'utf8');
    await emit([manifestBytes, trailer(manifestBytes.length)], false);
    await flush();
    await file.sync();
    await file.close();
    await rename(temp, outPath);
    renamed = true;
    await syncDirectory(dirname(outPath));
    progress?.done(records, bytes);
    return manifest;
  } finally {
    if (!renamed) {
      await file.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  }
}
