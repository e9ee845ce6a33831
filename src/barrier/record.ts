/**
 * The format of one barrier record. Every record names the generation of the root key that sealed
 * it, so the root key can be rotated: records of an older generation stay readable while new
 * writes use the current one. The generation is in the AAD with the logical path, so neither can
 * be changed in storage without the record failing authentication.
 *
 *   v2 (written): 0x02 ‖ generation (u32 big-endian) ‖ iv ‖ ciphertext ‖ tag   AAD = "keyhold-barrier-v2\0<generation>\0<path>"
 *   v1 (read):    0x01 ‖ iv ‖ ciphertext ‖ tag                                  AAD = "keyhold-barrier-v1\0<path>", generation 1
 */
import type { KeyObject } from 'node:crypto';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { KeyholdError, isKeyholdError } from '../errors.js';

const V1 = 1;
const V2 = 2;
const V2_HEADER_BYTES = 5;
/** The generation of every record written before records carried one. */
export const FIRST_GENERATION = 1;
export const MAX_GENERATION = 0xffff_ffff;

function aadFor(generation: number | null, path: string): Buffer {
  return Buffer.from(generation === null ? `keyhold-barrier-v1\0${path}` : `keyhold-barrier-v2\0${generation}\0${path}`, 'utf8');
}

export function sealRecord(key: KeyObject, generation: number, path: string, plaintext: Buffer): Buffer {
  const header = Buffer.allocUnsafe(V2_HEADER_BYTES);
  header[0] = V2;
  header.writeUInt32BE(generation, 1);
  return Buffer.concat([header, aesGcmSeal(key, plaintext, aadFor(generation, path))]);
}

/** The root-key generation a stored record names (1 for a record from before generations), without opening it. */
export function recordGeneration(path: string, raw: Buffer): number {
  if (raw[0] === V1) return FIRST_GENERATION;
  if (raw[0] === V2 && raw.length >= V2_HEADER_BYTES) return raw.readUInt32BE(1);
  throw new KeyholdError('ERR_BARRIER_INTEGRITY', `record ${path} has an unknown format`);
}

/** Opens a record with the key of the generation it names; any change to header, path or body is ERR_BARRIER_INTEGRITY. */
export function openRecord(keyOf: (generation: number) => KeyObject | undefined, path: string, raw: Buffer): Buffer {
  const generation = recordGeneration(path, raw);
  const key = keyOf(generation);
  if (!key) throw new KeyholdError('ERR_BARRIER_INTEGRITY', `record ${path} names root-key generation ${generation}, which this server does not hold`);
  const v1 = raw[0] === V1;
  try {
    return aesGcmOpen(key, raw.subarray(v1 ? 1 : V2_HEADER_BYTES), aadFor(v1 ? null : generation, path));
  } catch (err) {
    if (isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) {
      throw new KeyholdError('ERR_BARRIER_INTEGRITY', `record ${path} failed authentication: storage was altered`);
    }
    throw err;
  }
}
