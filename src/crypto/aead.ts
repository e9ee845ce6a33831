import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import { poolRandomBytes } from './random-pool.js';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

/** AES-256-GCM with a random 96-bit IV; returns iv ‖ ciphertext ‖ tag, the same layout the HSM adapter uses. */
export function aesGcmSeal(key: KeyObject | Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = poolRandomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  return Buffer.concat([iv, body, final, cipher.getAuthTag()]);
}

/** Rejects with ERR_CIPHERTEXT_INVALID on any layout, tag or AAD mismatch. */
export function aesGcmOpen(key: KeyObject | Buffer, blob: Buffer, aad: Buffer): Buffer {
  if (blob.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext is too short');
  const iv = blob.subarray(0, GCM_IV_BYTES);
  const tag = blob.subarray(blob.length - GCM_TAG_BYTES);
  const body = blob.subarray(GCM_IV_BYTES, blob.length - GCM_TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (cause) {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed authentication', { cause });
  }
}
