/**
 * The bytes the plugin hands kube-apiserver, with no I/O: the apiserver's DEK seed sealed under the
 * local KEK, and the annotation that carries that KEK wrapped by the root (HSM) key.
 *
 *   ciphertext          = 0x01 ‖ AES-256-GCM(local KEK, seed, AAD)        (iv ‖ body ‖ tag)
 *   kek.keyhold.io      = 0x01 ‖ the root key's wrapping of the local KEK
 *   AAD                 = "keyhold kms dek v1" ‖ 0 ‖ key_id ‖ 0 ‖ annotation
 *
 * Binding key_id and the annotation into the AAD means none of the three parts can be swapped for
 * another's without Decrypt failing.
 */
import type { KeyObject } from 'node:crypto';
import { GCM_IV_BYTES, GCM_TAG_BYTES, aesGcmOpen, aesGcmSeal } from '../../crypto/aead.js';
import { KeyholdError } from '../../errors.js';

export const KEK_ANNOTATION = 'kek.keyhold.io';
const FORMAT_V1 = 0x01;
/** kube-apiserver refuses ciphertexts over 1 KiB. */
export const MAX_CIPHERTEXT_BYTES = 1024;
export const MAX_PLAINTEXT_BYTES = MAX_CIPHERTEXT_BYTES - 1 - GCM_IV_BYTES - GCM_TAG_BYTES;
/** A wrapped 32-byte KEK is about 60 bytes; anything far larger is not ours. */
const MAX_ANNOTATION_BYTES = 4096;
const AAD_LABEL = Buffer.from('keyhold kms dek v1\0');
const NUL = Buffer.from([0]);
const FORMAT_PREFIX = Buffer.from([FORMAT_V1]);

export function encodeKekAnnotation(wrappedKek: Buffer): Buffer {
  return Buffer.concat([FORMAT_PREFIX, wrappedKek]);
}

/** The root key's wrapping of the local KEK, from the annotation value. */
export function decodeKekAnnotation(value: Buffer): Buffer {
  if (value.length < 2 || value.length > MAX_ANNOTATION_BYTES || value[0] !== FORMAT_V1) {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `annotation ${KEK_ANNOTATION} is not a keyhold wrapped KEK`);
  }
  return value.subarray(1);
}

/** The AAD for one (key_id, annotation); callers sealing many seeds under one KEK compute it once. */
export function dekAad(keyId: string, annotation: Buffer): Buffer {
  return Buffer.concat([AAD_LABEL, Buffer.from(keyId, 'utf8'), NUL, annotation]);
}

export function sealDekSeed(kek: KeyObject, seed: Buffer, keyId: string, annotation: Buffer, aad = dekAad(keyId, annotation)): Buffer {
  if (seed.length === 0 || seed.length > MAX_PLAINTEXT_BYTES) {
    throw new KeyholdError('ERR_PLAINTEXT_TOO_LARGE', `plaintext must be 1..${MAX_PLAINTEXT_BYTES} bytes, got ${seed.length}`);
  }
  return Buffer.concat([FORMAT_PREFIX, aesGcmSeal(kek, seed, aad)]);
}

/** Rejects with ERR_CIPHERTEXT_INVALID if any of ciphertext, key_id or annotation was altered. */
export function openDekSeed(kek: KeyObject, ciphertext: Buffer, keyId: string, annotation: Buffer, aad = dekAad(keyId, annotation)): Buffer {
  if (ciphertext.length < 1 + GCM_IV_BYTES + GCM_TAG_BYTES || ciphertext.length > MAX_CIPHERTEXT_BYTES || ciphertext[0] !== FORMAT_V1) {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext is not a keyhold KMS v2 ciphertext');
  }
  return aesGcmOpen(kek, ciphertext.subarray(1), aad);
}
