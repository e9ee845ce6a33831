import { randomBytes } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { GeneratedHsmKey, HsmKeyKind } from '../hsm/types.js';
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
 * The material of one new key version, made once and bound to a version number only when its
 * record is written: a rotation that loses a race to a concurrent one retries the record commit
 * with the next number instead of generating again (or leaking an HSM object per attempt).
 */
export interface PendingVersion {
  /**
   * True when the material itself names its version (wrapped material: the version is in the
   * wrap's AAD), so another version number needs `entryFor` again. An HSM object does not: its
   * record entry only points at it, so any number may be written into `entryFor`'s result.
   */
  readonly boundToVersion: boolean;
  /** The record entry for `version`; wrapped material is wrapped (again) for it, one HSM call, no object. */
  entryFor(version: number): Promise<KeyVersionRecord>;
  /** Zeroes the in-memory secret of wrapped material; call once the version is committed or given up. */
  release(): void;
}

/**
 * Makes the material for one new version: generated inside the token (protection=hsm), or
 * generated in memory and kept until `release` so it can be wrapped by the HSM wrap key for the
 * version it is finally committed as (protection=wrapped). `version` is the one expected.
 */
export async function prepareVersion(ctx: KeysContext, record: Pick<KeyRecord, 'id' | 'type' | 'protection'>, version: number): Promise<PendingVersion> {
  requireCapability(ctx, record);
  const algorithm = algorithmOf(record.type);
  const createdAt = new Date().toISOString();
  if (record.protection === 'hsm') {
    const generated = await generateInToken(ctx, hsmLabelFor(record.id, version), algorithm.hsmKind);
    const entry: KeyVersionRecord = { version, createdAt, hsmLabel: generated.label };
    if (generated.publicKeySpki) entry.publicKeySpki = generated.publicKeySpki.toString('base64');
    if (algorithm.family === 'rsa') {
      const publicKey = publicKeyOf(entry);
      if (publicKey) {
        try {
          entry.oaepHash = await ctx.hsm.probeOaepHash(generated, publicKey);
        } catch (err) {
          await ctx.hsm.destroyKey(generated).catch(() => { /* the probe's failure is what the caller must see */ });
          throw err;
        }
      }
    }
    return { boundToVersion: false, entryFor: async (v) => ({ ...entry, version: v }), release: () => undefined };
  }
  const { secret, publicKeySpki } = await algorithm.generate();
  return {
    boundToVersion: true,
    async entryFor(v) {
      const wrapped = await ctx.hsm.aesGcmEncrypt(ctx.wrapKey, secret, materialAad(record.id, v));
      const entry: KeyVersionRecord = { version: v, createdAt, wrappedMaterial: wrapped.toString('base64') };
      if (publicKeySpki) entry.publicKeySpki = publicKeySpki.toString('base64');
      // Node's own RSA-OAEP takes SHA-256.
      if (algorithm.family === 'rsa') entry.oaepHash = 'sha256';
      return entry;
    },
    release: () => zeroize(secret),
  };
}

/**
 * Generates a token key under `base`, the label its version is expected to have, or beside it
 * under a fresh suffix when that label is taken: by an object a crash left between generating a
 * rotation's key and committing its record (unused), or by a concurrent rotation of the same key
 * generating right now. Either way this generation must neither fail nor share a label.
 */
async function generateInToken(ctx: KeysContext, base: string, kind: HsmKeyKind): Promise<GeneratedHsmKey> {
  const fresh = () => `${base}/${randomBytes(4).toString('hex')}`;
  // No look-up of `base` first: generateKey checks the label inside the HSM adapter's write queue,
  // and a search on the token outside it can make a concurrent generation fail (pkcs11-hsm.ts).
  try {
    return await ctx.hsm.generateKey(base, kind);
  } catch (err) {
    // Refused before anything was made: the label exists, or is being generated by a concurrent call.
    if (!isKeyholdError(err, 'ERR_CONFLICT')) throw err;
    return ctx.hsm.generateKey(fresh(), kind);
  }
}

/** The record entry of a version made and committed as `version` at once (key creation). */
export async function createVersionMaterial(ctx: KeysContext, record: Pick<KeyRecord, 'id' | 'type' | 'protection'>, version: number): Promise<KeyVersionRecord> {
  const pending = await prepareVersion(ctx, record, version);
  try {
    return await pending.entryFor(version);
  } finally {
    pending.release();
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
