import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { KeyholdError } from '../errors.js';
import { compareKeys } from '../storage/memory.js';
import type { StorageEntry } from '../storage/types.js';
import {
  BACKUP_FORMAT_VERSION, BACKUP_HEADER, END_OF_RECORDS, MAX_KEY_BYTES, MAX_MANIFEST_BYTES, MAX_VALUE_BYTES, TRAILER_BYTES, TRAILER_MAGIC,
  countKeysOf, invalid, type BackupManifest,
} from './format.js';

const CHUNK_BYTES = 1024 * 1024;

/** Reads the first `limit` bytes of a file in order, in large chunks, hashing everything it hands out. */
class ContentReader {
  private buffered = Buffer.alloc(0);
  private offset = 0;
  private position = 0;
  readonly hash: Hash = createHash('sha256');

  constructor(private readonly file: FileHandle, private readonly limit: number) {}

  get remaining(): number {
    return this.limit - this.position + (this.buffered.length - this.offset);
  }

  async take(n: number): Promise<Buffer> {
    if (n > this.remaining) throw invalid('the backup file is cut short inside a record');
    while (this.buffered.length - this.offset < n) {
      const size = Math.min(Math.max(CHUNK_BYTES, n), this.limit - this.position);
      const chunk = Buffer.allocUnsafe(size);
      const { bytesRead } = await this.file.read(chunk, 0, size, this.position);
      if (bytesRead !== size) throw invalid('the backup file changed while it was read');
      this.position += size;
      this.buffered = Buffer.concat([this.buffered.subarray(this.offset), chunk]);
      this.offset = 0;
    }
    const out = this.buffered.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.hash.update(out);
    return out;
  }
}

interface Located {
  manifest: BackupManifest;
  /** Bytes before the manifest: what its sha256 covers. */
  contentLength: number;
}

function checkManifest(raw: unknown): BackupManifest {
  const m = raw as Partial<BackupManifest> | null;
  if (typeof m !== 'object' || m === null || m.format !== 'keyhold-backup') throw invalid('the backup manifest is not a keyhold backup manifest');
  if (m.version !== BACKUP_FORMAT_VERSION) throw invalid(`backup format version ${String(m.version)} is not supported (this keyhold reads version ${BACKUP_FORMAT_VERSION})`);
  if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) throw invalid('the backup manifest has no valid sha256');
  if (!Number.isSafeInteger(m.records) || !Number.isSafeInteger(m.bytes) || typeof m.counts !== 'object' || m.counts === null) throw invalid('the backup manifest has no valid counts');
  return m as BackupManifest;
}

async function locate(file: FileHandle): Promise<Located> {
  const { size } = await file.stat();
  if (size < BACKUP_HEADER.length + 4 + TRAILER_BYTES) throw invalid('the file is too short to be a keyhold backup');
  const tail = Buffer.alloc(TRAILER_BYTES);
  await file.read(tail, 0, TRAILER_BYTES, size - TRAILER_BYTES);
  if (!tail.subarray(4).equals(TRAILER_MAGIC)) throw invalid('the file does not end like a keyhold backup (cut short, or not a backup)');
  const manifestLength = tail.readUInt32BE(0);
  const contentLength = size - TRAILER_BYTES - manifestLength;
  if (manifestLength > MAX_MANIFEST_BYTES || contentLength < BACKUP_HEADER.length + 4) throw invalid('the backup trailer is damaged');
  const raw = Buffer.alloc(manifestLength);
  await file.read(raw, 0, manifestLength, contentLength);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalid('the backup manifest is not valid JSON');
  }
  return { manifest: checkManifest(parsed), contentLength };
}

/**
 * Every record of the backup, in file order. Checks the layout as it goes (header, frame lengths,
 * keys well-formed and strictly ascending, the end marker exactly at the manifest), and at the end
 * the checksum and the counts against the manifest: a caller that needs the file verified before
 * acting reads it through once first (verifyBackup).
 */
async function* records(file: FileHandle, located: Located): AsyncGenerator<StorageEntry> {
  const { manifest, contentLength } = located;
  const reader = new ContentReader(file, contentLength);
  if (!(await reader.take(BACKUP_HEADER.length)).equals(BACKUP_HEADER)) throw invalid('the file does not start like a keyhold backup');
  const counts: Record<string, number> = Object.create(null) as Record<string, number>;
  let previous: string | null = null;
  let count = 0;
  let bytes = 0;
  for (;;) {
    const keyLength = (await reader.take(4)).readUInt32BE(0);
    if (keyLength === END_OF_RECORDS) break;
    if (keyLength > MAX_KEY_BYTES) throw invalid(`record ${count + 1} has a ${keyLength}-byte key`);
    const keyBytes = await reader.take(keyLength);
    const key = keyBytes.toString('utf8');
    if (!Buffer.from(key, 'utf8').equals(keyBytes)) throw invalid(`record ${count + 1} has a key that is not UTF-8`);
    if (previous !== null && compareKeys(previous, key) >= 0) throw invalid(`records are out of order at ${JSON.stringify(key)}`);
    const valueLength = (await reader.take(4)).readUInt32BE(0);
    if (valueLength > MAX_VALUE_BYTES) throw invalid(`record ${JSON.stringify(key)} has a ${valueLength}-byte value`);
    const value = Buffer.from(await reader.take(valueLength));
    previous = key;
    count++;
    bytes += keyLength + valueLength;
    for (const name of countKeysOf(key)) counts[name] = (counts[name] ?? 0) + 1;
    yield { key, value };
  }
  if (reader.remaining !== 0) throw invalid('the backup has bytes after its end-of-records marker');
  if (reader.hash.digest('hex') !== manifest.sha256) throw invalid('the backup checksum does not match its manifest: the file was altered or damaged');
  const expected = Object.entries(manifest.counts).sort();
  const got = Object.entries(counts).sort();
  if (count !== manifest.records || bytes !== manifest.bytes || JSON.stringify(expected) !== JSON.stringify(got)) {
    throw invalid('the backup holds other records than its manifest counts');
  }
}

/** A backup file opened for reading; close it when done. */
export class BackupFile {
  private constructor(private readonly file: FileHandle, private readonly located: Located) {}

  static async open(path: string): Promise<BackupFile> {
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (cause) {
      throw new KeyholdError('ERR_BACKUP_INVALID', `cannot read backup ${path}: ${(cause as Error).message}`, { cause });
    }
    try {
      return new BackupFile(file, await locate(file));
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  get manifest(): BackupManifest {
    return this.located.manifest;
  }

  /** The records, checked as they are read; the checksum is known only after the last. */
  records(): AsyncGenerator<StorageEntry> {
    return records(this.file, this.located);
  }

  /**
   * Reads the whole file once: layout, order, checksum and counts. Returns the values of the
   * records named in `keep` (small ones, such as the seal record), so they can be used before
   * anything else is done.
   */
  async verify(keep: readonly string[] = []): Promise<Map<string, Buffer>> {
    const kept = new Map<string, Buffer>();
    for await (const entry of this.records()) if (keep.includes(entry.key)) kept.set(entry.key, entry.value);
    return kept;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
