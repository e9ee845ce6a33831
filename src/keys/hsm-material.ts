import type { KeyObject } from 'node:crypto';
import type { Hsm, HsmKey } from '../hsm/types.js';
import type { MaterialFacts } from './key-material.js';
import { VersionMaterial } from './version-material.js';

/** protection=hsm: a non-extractable token object; every operation that needs the secret is a token call. */
export class HsmKeyMaterial extends VersionMaterial {
  constructor(private readonly hsm: Hsm, private readonly key: HsmKey, facts: MaterialFacts) {
    super(facts);
  }

  protected gcmSeal(plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.hsm.aesGcmEncrypt(this.key, plaintext, aad);
  }

  protected gcmOpen(body: Buffer, aad: Buffer): Promise<Buffer> {
    return this.hsm.aesGcmDecrypt(this.key, body, aad);
  }

  protected oaepEncrypt(plaintext: Buffer, publicKey: KeyObject): Promise<Buffer> {
    return this.hsm.rsaEncrypt(this.key, publicKey, plaintext, this.facts.oaepHash);
  }

  protected oaepDecrypt(body: Buffer): Promise<Buffer> {
    return this.hsm.rsaDecrypt(this.key, body, this.facts.oaepHash);
  }

  protected hmac(input: Buffer): Promise<Buffer> {
    return this.hsm.hmacSha256(this.key, input);
  }

  protected signature(input: Buffer): Promise<Buffer> {
    return this.hsm.sign(this.key, input);
  }

  /** Nothing of the secret is in this process; the token object stays (deleting a key destroys it). */
  protected release(): void {}
}
