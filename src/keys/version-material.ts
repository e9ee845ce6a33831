import { constants, timingSafeEqual, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import type { KeyAlgorithm, KeyOperation } from './algorithms.js';
import type { KeyMaterial, MaterialFacts } from './key-material.js';

/** Same parameters the HSM adapter uses, so a signature verifies whichever holder made it. */
export function signOptions(algorithm: KeyAlgorithm, key: KeyObject) {
  return algorithm.family === 'ec'
    ? { key, dsaEncoding: 'ieee-p1363' as const }
    : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
}

/**
 * What a key type does with its material, written once for every holder: which operations it
 * has, RSA-OAEP's limits, and checking signatures and tags. A holder (hsm-material.ts,
 * in-memory-material.ts) supplies only the primitives that need the secret.
 *
 * The methods are async so that a holder's synchronous throw becomes a rejection; an in-memory
 * holder runs to completion within the call, so a release can never land in the middle of it.
 */
export abstract class VersionMaterial implements KeyMaterial {
  private released = false;
  /** RSA-OAEP carries at most modulus - 2·hash - 2 bytes. */
  private readonly oaepCapacity: number;

  protected constructor(protected readonly facts: MaterialFacts) {
    this.oaepCapacity = (facts.algorithm.modulusBits ?? 0) / 8 - 2 * (facts.oaepHash === 'sha256' ? 32 : 20) - 2;
  }

  /** AES-256-GCM: iv(12) ‖ ciphertext ‖ tag(16). */
  protected abstract gcmSeal(plaintext: Buffer, aad: Buffer): Buffer | Promise<Buffer>;
  protected abstract gcmOpen(body: Buffer, aad: Buffer): Buffer | Promise<Buffer>;
  protected abstract oaepEncrypt(plaintext: Buffer, publicKey: KeyObject): Buffer | Promise<Buffer>;
  protected abstract oaepDecrypt(body: Buffer): Buffer | Promise<Buffer>;
  protected abstract hmac(input: Buffer): Buffer | Promise<Buffer>;
  /** ECDSA (P1363) or RSA-PSS-SHA256 over `input`. */
  protected abstract signature(input: Buffer): Buffer | Promise<Buffer>;
  /** Lets go of the secret; called once. */
  protected abstract release(): void;

  async seal(plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    this.require('encrypt');
    if (this.facts.algorithm.family === 'aes') return this.gcmSeal(plaintext, aad);
    this.refuseAad(aad);
    if (plaintext.length > this.oaepCapacity) {
      throw new KeyholdError('ERR_PLAINTEXT_TOO_LARGE', `${this.facts.type} keys encrypt at most ${this.oaepCapacity} bytes; use an aes256-gcm key or a data key`);
    }
    return this.oaepEncrypt(plaintext, this.publicKey());
  }

  async open(body: Buffer, aad: Buffer): Promise<Buffer> {
    this.require('decrypt');
    if (this.facts.algorithm.family === 'aes') return this.gcmOpen(body, aad);
    this.refuseAad(aad);
    return this.oaepDecrypt(body);
  }

  async sign(input: Buffer): Promise<Buffer> {
    this.require('sign');
    return this.facts.algorithm.family === 'hmac' ? this.hmac(input) : this.signature(input);
  }

  async verify(input: Buffer, signature: Buffer): Promise<boolean> {
    this.require('verify');
    const algorithm = this.facts.algorithm;
    if (algorithm.family === 'hmac') {
      const expected = await this.hmac(input);
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    }
    // Only the public half is needed: checked locally whoever holds the private half.
    return nodeVerify(algorithm.digest ?? 'sha256', input, signOptions(algorithm, this.publicKey()), signature);
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }

  private require(operation: KeyOperation): void {
    if (this.released) {
      throw new KeyholdError('ERR_CONFLICT', `the material of key "${this.facts.name}" version ${this.facts.version} was released during the operation (the key changed); retry`);
    }
    if (!this.facts.algorithm.operations.has(operation)) {
      throw new KeyholdError('ERR_KEY_OPERATION_UNSUPPORTED', `${this.facts.type} keys do not support ${operation}`);
    }
  }

  /** OAEP has no portable label support across tokens, so nothing can be bound to an RSA ciphertext. */
  private refuseAad(aad: Buffer): void {
    if (aad.length > 0) throw new KeyholdError('ERR_BAD_REQUEST', `${this.facts.type} keys do not take a context`);
  }

  private publicKey(): KeyObject {
    if (!this.facts.publicKey) throw new KeyholdError('ERR_INTERNAL', `key "${this.facts.name}" has no public key`);
    return this.facts.publicKey;
  }
}
