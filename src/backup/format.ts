import { KeyholdError } from '../errors.js';

/**
 * The backup file, version 1:
 *
 *   "keyhold-backup/1\n"                      header
 *   { u32 keyLength, key (UTF-8), u32 valueLength, value }*   every record, ascending by key
 *   u32 0xFFFFFFFF                            end of records
 *   manifest (JSON, UTF-8)
 *   u32 manifestLength, "KHB1"                trailer
 *
 * The records are copied as the store holds them: barrier ciphertext and the seal record (itself
 * only HSM-wrapped ciphertext and labels), never plaintext. The manifest's sha256 covers every
 * byte before it (header, records, end marker), so a flipped or cut byte is found before a restore
 * writes anything. Integers are big-endian.
 */
export const BACKUP_HEADER = Buffer.from('keyhold-backup/1\n', 'utf8');
export const BACKUP_FORMAT_VERSION = 1;
export const END_OF_RECORDS = 0xffffffff;
export const TRAILER_MAGIC = Buffer.from('KHB1', 'ascii');
export const TRAILER_BYTES = 4 + TRAILER_MAGIC.length;
/** Larger keys or values than this are not records keyhold writes: refuse rather than allocate. */
export const MAX_KEY_BYTES = 64 * 1024;
export const MAX_VALUE_BYTES = 512 * 1024 * 1024;
export const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface BackupManifest {
  format: 'keyhold-backup';
  version: typeof BACKUP_FORMAT_VERSION;
  /** When the snapshot was taken (ISO 8601). */
  createdAt: string;
  /** The root key generation recorded in the seal record, when the store records one. */
  rootKeyGeneration: number | null;
  /**
   * Which HSM objects sealed the store: restore needs a token that holds them. `wrapKeyLabel` is
   * null when wrapped material is wrapped in memory (its key is a barrier record, in the backup);
   * `rootKeyObject` names the data object holding the wrapped root key (data-object mode).
   */
  seal: { sealKeyLabel: string; wrapKeyLabel: string | null; rootKeyObject?: string; tokenSerial: string } | null;
  records: number;
  /** Key and value bytes of every record. */
  bytes: number;
  /** Records per top-level prefix ("core", "data"), and per barrier domain ("data/secrets", ...). */
  counts: Record<string, number>;
  /** SHA-256 (hex) of every byte of the file before the manifest. */
  sha256: string;
}

export function invalid(message: string): KeyholdError {
  return new KeyholdError('ERR_BACKUP_INVALID', message);
}

/** The counters a record adds to: its top-level prefix and, under data/, its domain. */
export function countKeysOf(key: string): string[] {
  const parts = key.split('/');
  const top = parts[0] as string;
  return top === 'data' && parts.length > 2 ? [top, `${top}/${parts[1] as string}`] : [top];
}

/** One record's frame. */
export function encodeRecord(key: string, value: Buffer): Buffer[] {
  const keyBytes = Buffer.from(key, 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(keyBytes.length);
  const valueHead = Buffer.allocUnsafe(4);
  valueHead.writeUInt32BE(value.length);
  return [head, keyBytes, valueHead, value];
}

export function endOfRecords(): Buffer {
  const end = Buffer.allocUnsafe(4);
  end.writeUInt32BE(END_OF_RECORDS);
  return end;
}

export function trailer(manifestLength: number): Buffer {
  const out = Buffer.allocUnsafe(TRAILER_BYTES);
  out.writeUInt32BE(manifestLength);
  TRAILER_MAGIC.copy(out, 4);
  return out;
}
