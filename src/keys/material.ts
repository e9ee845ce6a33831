import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import type { Hsm, HsmKey } from '../hsm/types.js';
import { algorithmOf } from './algorithms.js';
import type { KeyRecord, KeyVersionRecord } from './types.js';

/** A key version ready to use: either a handle in the token, or material unwrapped into memory. */
export type Material =
  | { protection: 'hsm'; hsmKey: HsmKey; publicKey?: KeyObject }
  | { protection: 'wrapped'; secret: KeyObject; publicKey?: KeyObject };

export function materialAad(keyId: string, version: number): Buffer {
  return Buffer.from(`keyhold/key-material/v1\0${keyId}\0${version}`, 'utf8');
}

export function publicKeyOf(version: KeyVersionRecord): KeyObject | undefined {
  return version.publicKeySpki ? createPublicKey({ key: Buffer.from(version.publicKeySpki, 'base64'), format: 'der', type: 'spki' }) : undefined;
}

/**
 * Unwrapped material lives in KeyObjects (outside the JS heap; the raw unwrap buffer is zeroed at
 * once) for at most `ttlMs`, so a busy key costs one HSM unwrap per TTL rather than per request.
 */
export class MaterialCache {
  private readonly entries = new Map<string, { material: Material; expires: number }>();
  /** Drops expired entries even when no request comes, so "at most ttlMs" holds for idle keys too. */
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly hsm: Hsm, private readonly wrapKey: HsmKey, private readonly ttlMs = 60_000, private readonly maxEntries = 10_000) {
    this.sweeper = setInterval(() => this.dropExpired(Date.now()), Math.max(1000, ttlMs / 4));
    this.sweeper.unref();
  }

  async get(record: KeyRecord, version: number): Promise<Material> {
    const cacheKey = `${record.id}/${version}`;
    const now = Date.now();
    const hit = this.entries.get(cacheKey);
    if (hit && hit.expires > now) return hit.material;
    const versionRecord = record.versions[String(version)];
    if (!versionRecord) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `key "${record.name}" has no version ${version}`);
    const material = await this.load(record, versionRecord);
    if (this.entries.size >= this.maxEntries) {
      this.dropExpired(now);
      if (this.entries.size >= this.maxEntries) this.entries.clear();
    }
    this.entries.set(cacheKey, { material, expires: now + this.ttlMs });
    return material;
  }

  /** Forget every version of a key (rotation, deletion). */
  forget(keyId: string): void {
    for (const cacheKey of this.entries.keys()) if (cacheKey.startsWith(`${keyId}/`)) this.entries.delete(cacheKey);
  }

  /** Forgets everything and stops the sweeper (runtime close). */
  clear(): void {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  private dropExpired(now: number): void {
    for (const [cacheKey, entry] of this.entries) if (entry.expires <= now) this.entries.delete(cacheKey);
  }

  private async load(record: KeyRecord, version: KeyVersionRecord): Promise<Material> {
    const algorithm = algorithmOf(record.type);
    const publicKey = publicKeyOf(version);
    if (record.protection === 'hsm') {
      const hsmKey = version.hsmLabel ? this.hsm.findKey(version.hsmLabel, algorithm.hsmKind) : null;
      if (!hsmKey) throw new KeyholdError('ERR_HSM_KEY_MISSING', `HSM object for key "${record.name}" version ${version.version} is missing from the token`);
      return { protection: 'hsm', hsmKey, publicKey };
    }
    if (!version.wrappedMaterial) throw new KeyholdError('ERR_INTERNAL', `key "${record.name}" version ${version.version} has no material`);
    const raw = await this.hsm.aesGcmDecrypt(this.wrapKey, Buffer.from(version.wrappedMaterial, 'base64'), materialAad(record.id, version.version));
    try {
      const secret = algorithm.family === 'aes' || algorithm.family === 'hmac'
        ? createSecretKey(raw)
        : createPrivateKey({ key: raw, format: 'der', type: 'pkcs8' });
      return { protection: 'wrapped', secret, publicKey };
    } finally {
      zeroize(raw);
    }
  }
}
