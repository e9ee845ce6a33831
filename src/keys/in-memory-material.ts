import { constants, createHmac, createPrivateKey, createSecretKey, privateDecrypt, publicEncrypt, sign as nodeSign, type KeyObject } from 'node:crypto';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import type { MaterialFacts } from './key-material.js';
import { signOptions, VersionMaterial } from './version-material.js';

/**
 * protection=wrapped, once unwrapped: the secret lives in a KeyObject (outside the JS heap, freed
 * with OPENSSL_clear_free once unreachable), never in a Buffer that outlives construction. Every
 * primitive is synchronous, so an operation runs to completion within the call.
 */
export class InMemoryKeyMaterial extends VersionMaterial {
  /** Null once released: this object may still be reachable, the secret no longer is. */
  private secret: KeyObject | null;

  private constructor(secret: KeyObject, facts: MaterialFacts) {
    super(facts);
    this.secret = secret;
  }

  /** Takes a raw secret key or a PKCS#8 DER private key, and zeroes `raw` whatever happens. */
  static fromRaw(facts: MaterialFacts, raw: Buffer): InMemoryKeyMaterial {
    try {
      const family = facts.algorithm.family;
      const secret = family === 'aes' || family === 'hmac' ? createSecretKey(raw) : createPrivateKey({ key: raw, format: 'der', type: 'pkcs8' });
      return new InMemoryKeyMaterial(secret, facts);
    } finally {
      zeroize(raw);
    }
  }

  /** The base class refuses every operation once released, so the secret is there whenever a primitive runs. */
  private get key(): KeyObject {
    return this.secret as KeyObject;
  }

  protected gcmSeal(plaintext: Buffer, aad: Buffer): Buffer {
    return aesGcmSeal(this.key, plaintext, aad);
  }

  protected gcmOpen(body: Buffer, aad: Buffer): Buffer {
    return aesGcmOpen(this.key, body, aad);
  }

  protected oaepEncrypt(plaintext: Buffer, publicKey: KeyObject): Buffer {
    return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: this.facts.oaepHash }, plaintext);
  }

  protected oaepDecrypt(body: Buffer): Buffer {
    try {
      return privateDecrypt({ key: this.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: this.facts.oaepHash }, body);
    } catch (cause) {
      throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed to decrypt', { cause });
    }
  }

  protected hmac(input: Buffer): Buffer {
    return createHmac('sha256', this.key).update(input).digest();
  }

  protected signature(input: Buffer): Buffer {
    return nodeSign(this.facts.algorithm.digest ?? 'sha256', input, signOptions(this.facts.algorithm, this.key));
  }

  protected release(): void {
    this.secret = null;
  }
}
