import { randomBytes } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import { algorithmOf } from './algorithms.js';
import type { KeysContext } from './context.js';
import { materialAad, publicKeyOf } from './material.js';
import type { KeyRecord, KeyVersionRecord } from './types.js';

/** HSM label of a key version: the immutable key id, never the (reusable) name. */
export function hsmLabelFor(keyId: string, version: number): string {
  return `keyhold/key/${keyId}/v${version}`;
}

function requireCapability(ctx: KeysContext, record: Pick<KeyRecord, 'type' | 'protection'>): void {
  const caps = ctx.hsm.capabilities;
  if (!caps.aesGcm) throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token cannot do AES-GCM');
  if (record.protection === 'wrapped') return;
  const family = algorithmOf(record.type).family;
  const ok = family === 'aes' ? caps.aesGcm
    : family === 'hmac' ? caps.hmacSha256
      : family === 'ec' ? caps.ecdsa && caps.ecKeyGen
        : caps.rsaKeyGen && caps.rsaPss && caps.rsaOaepDecrypt;
  if (!ok) throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', `the token does not support ${record.type} keys with protection=hsm`);
}

/**
 * Makes the material for one new version: generated inside the token (protection=hsm), or
 * generated in memory, wrapped by the HSM wrap key and zeroed (protection=wrapped).
 */
export async function createVersionMaterial(ctx: KeysContext, record: Pick<KeyRecord, 'id' | 'type' | 'protection'>, version: number): Promise<KeyVersionRecord> {
  requireCapability(ctx, record);
  const algorithm = algorithmOf(record.type);
  const createdAt = new Date().toISOString();
  if (record.protection === 'hsm') {
    // The token may already hold this version's label without the record knowing it: a crash between
    // generating a rotation's key and committing its record. That object is unused; rather than
    // failing every later rotation on the taken label, generate beside it under a fresh one.
    const base = hsmLabelFor(record.id, version);
    const label = ctx.hsm.findKey(base, algorithm.hsmKind) ? `${base}/${randomBytes(4).toString('hex')}` : base;
    const generated = await ctx.hsm.generateKey(label, algorithm.hsmKind);
    const entry: KeyVersionRecord = { version, createdAt, hsmLabel: generated.label };
    if (generated.publicKeySpki) entry.publicKeySpki = generated.publicKeySpki.toString('base64');
    if (algorithm.family === 'rsa') {
      const publicKey = publicKeyOf(entry);
      if (publicKey) entry.oaepHash = await ctx.hsm.probeOaepHash(generated, publicKey);
    }
    return entry;
  }
  const { secret, publicKeySpki } = await algorithm.generate();
  try {
    const wrapped = await ctx.hsm.aesGcmEncrypt(ctx.wrapKey, secret, materialAad(record.id, version));
    const entry: KeyVersionRecord = { version, createdAt, wrappedMaterial: wrapped.toString('base64') };
    if (publicKeySpki) entry.publicKeySpki = publicKeySpki.toString('base64');
    // Node's own RSA-OAEP takes SHA-256.
    if (algorithm.family === 'rsa') entry.oaepHash = 'sha256';
    return entry;
  } finally {
    zeroize(secret);
  }
}

/** Removes HSM objects of versions that will not be recorded (a lost race) or of a deleted key. */
export async function destroyVersionMaterial(ctx: KeysContext, record: Pick<KeyRecord, 'type' | 'protection'>, versions: KeyVersionRecord[]): Promise<void> {
  if (record.protection !== 'hsm') return;
  const kind = algorithmOf(record.type).hsmKind;
  for (const version of versions) {
    const key = version.hsmLabel ? ctx.hsm.findKey(version.hsmLabel, kind) : null;
    if (key) await ctx.hsm.destroyKey(key);
  }
}
