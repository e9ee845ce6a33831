import { createPublicKey, type KeyObject } from 'node:crypto';
import type { OaepHash } from '../hsm/types.js';
import { algorithmOf, type KeyAlgorithm } from './algorithms.js';
import type { KeyRecord, KeyVersionRecord } from './types.js';

/**
 * One key version's material, whatever holds it: a token object (protection=hsm) or a secret
 * unwrapped into memory (protection=wrapped). The holder is chosen once, when the version is
 * loaded (protection/scheme.ts); key operations call this and never ask which it is.
 *
 * Each method supports the key types whose algorithm lists the operation (algorithms.ts), and
 * rejects with ERR_KEY_OPERATION_UNSUPPORTED otherwise. Every implementation passes
 * test/contract/key-material.ts.
 */
export interface KeyMaterial {
  /**
   * Encrypts (AES-256-GCM with `aad` authenticated; RSA-OAEP, which binds nothing, so `aad` must
   * be empty). Also wraps data keys. Returns the ciphertext body (GCM: iv ‖ ciphertext ‖ tag).
   */
  seal(plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  /** Rejects with ERR_CIPHERTEXT_INVALID on any layout, tag, AAD or padding mismatch. */
  open(body: Buffer, aad: Buffer): Promise<Buffer>;
  /** ECDSA (IEEE P1363 r ‖ s), RSA-PSS-SHA256, or the HMAC-SHA256 tag for hmac keys. */
  sign(input: Buffer): Promise<Buffer>;
  /** False for a signature or tag that does not match; public-key checks need no secret. */
  verify(input: Buffer, signature: Buffer): Promise<boolean>;
  /** Releases the material (evicted, or the key changed); every later call rejects with ERR_CONFLICT. */
  close(): void;
}

/** What a version's material needs to know besides its secret: read once, when it is loaded. */
export interface MaterialFacts {
  /** Key name and version, for messages only. */
  readonly name: string;
  readonly version: number;
  readonly type: KeyRecord['type'];
  readonly algorithm: KeyAlgorithm;
  /** Asymmetric keys: the public half (verification, and RSA-OAEP encryption). */
  readonly publicKey: KeyObject | undefined;
  /** RSA keys: the OAEP hash this version was made with (probed on the token for protection=hsm). */
  readonly oaepHash: OaepHash;
}

export function publicKeyOf(version: KeyVersionRecord): KeyObject | undefined {
  return version.publicKeySpki ? createPublicKey({ key: Buffer.from(version.publicKeySpki, 'base64'), format: 'der', type: 'spki' }) : undefined;
}

export function factsOf(record: Pick<KeyRecord, 'name' | 'type'>, version: KeyVersionRecord): MaterialFacts {
  return {
    name: record.name,
    version: version.version,
    type: record.type,
    algorithm: algorithmOf(record.type),
    publicKey: publicKeyOf(version),
    oaepHash: version.oaepHash ?? 'sha256',
  };
}
