import { constants as cryptoConstants, createPublicKey, publicEncrypt, randomBytes, verify, type KeyObject } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { Hsm, HsmCapabilities, HsmKey, OaepHash } from '../hsm/types.js';
import type { Storage } from '../storage/types.js';
import { FIRST_GENERATION, MAX_GENERATION } from './record.js';
import type { RecoveryFields } from './recovery.js';

/** The only record outside the barrier: it holds nothing but ciphertext, a public key and HSM object labels. */
export const SEAL_RECORD_KEY = 'core/seal';
const ROOT_KEY_AAD_V1 = Buffer.from('keyhold/seal/root-key/v1', 'utf8');
const ROOT_KEY_BYTES = 32;
/** The RSA seal key's size: 128-bit security like the AES-256 root key's weakest link elsewhere (barrier records are AES-256-GCM). */
const RSA_SEAL_KIND = 'rsa-3072';
const RSA_PSS = { padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } as const;

/** How the root key is protected by the token, chosen by probing its mechanisms (never its vendor). */
export type SealMethod = 'aes-gcm' | 'rsa-oaep';

/** What wraps protection=wrapped material: an AES key in the token, or a key in the barrier used in memory (keys/protection/wrapper.ts). */
export type MaterialWrap = { mode: 'hsm'; keyLabel: string } | { mode: 'memory' };

/** Stores sealed before seal methods: AES-GCM on the token, both keys in the token. Read unchanged, never written again. */
export interface SealRecordV1 {
  version: 1;
  /** HSM AES key that wraps the barrier root key. */
  sealKeyLabel: string;
  /** HSM AES key that wraps `wrapped`-protection user key material. */
  wrapKeyLabel: string;
  /** Root key, AES-256-GCM-encrypted on the HSM: iv ‖ ciphertext ‖ tag, base64. */
  wrappedRootKey: string;
  tokenSerial: string;
  createdAt: string;
  /**
   * Generation of the root key in `wrappedRootKey`, named by every record it seals
   * (src/barrier/record.ts). Absent in a store sealed before generations: generation 1.
   */
  rootKeyGeneration?: number;
}

export interface SealRecordV2 {
  version: 2;
  method: SealMethod;
  /** The token key that protects the root key: an AES key (aes-gcm) or an RSA private key (rsa-oaep). */
  sealKeyLabel: string;
  /** rsa-oaep: the seal key's public half (SPKI DER, base64), with which the root key is encrypted locally. */
  publicKeySpki?: string;
  /** rsa-oaep: the OAEP hash the token decrypts with (probed). */
  oaepHash?: OaepHash;
  /**
   * rsa-oaep: RSA-PSS signature, made by the seal key in the token, over the fields that say what
   * the root key is (rootKeyBinding): the public key lets anyone encrypt a root key of their own,
   * so only this signature tells the store's root key from one an attacker put in storage.
   */
  signature?: string;
  /** The wrapped root key (AES-GCM: iv ‖ ciphertext ‖ tag; RSA-OAEP: ciphertext), base64, when kept in storage... */
  wrappedRootKey?: string;
  /** ...or the label of the token's CKO_DATA object that holds it (data-object mode). Exactly one of the two. */
  rootKeyObject?: string;
  wrap: MaterialWrap;
  /**
   * Recovery shares (barrier/recovery.ts): the root key under the recovery key R. It wraps one
   * root key of one generation, so protectRoot never carries it over from `previous`: the caller
   * sets it (recoveryFieldsFor for a new root key; the same value for the same root key).
   */
  recovery?: RecoveryFields;
  tokenSerial: string;
  createdAt: string;
  rootKeyGeneration: number;
}

export type SealRecord = SealRecordV1 | SealRecordV2;

export interface SealOptions {
  /** Keep the wrapped root key as a private CKO_DATA object in the token instead of in storage. */
  dataObject?: boolean;
  /**
   * The material wrap to record instead of the previous record's (protectRoot), or instead of the
   * fresh store's default (initializeSeal: stores with recovery shares ask for 'memory').
   */
  wrap?: MaterialWrap;
}

/** The generation of the root key a seal record holds. */
export function rootKeyGeneration(record: SealRecord): number {
  const generation = record.rootKeyGeneration ?? FIRST_GENERATION;
  if (!Number.isSafeInteger(generation) || generation < FIRST_GENERATION || generation > MAX_GENERATION) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record names root-key generation ${String(generation)}, which is not valid`);
  }
  return generation;
}

/** The seal method of a record (v1 records are AES-GCM). */
export function sealMethodOf(record: SealRecord): SealMethod {
  return record.version === 1 ? 'aes-gcm' : record.method;
}

/** The recovery copy of the root key, when the store has recovery shares (only v2 records can). */
export function recoveryOf(record: SealRecord): RecoveryFields | undefined {
  return record.version === 2 ? record.recovery : undefined;
}

/** Whether `hsm` holds the key that seals `record` (the token that sealed the store, or a copy of it). */
export function holdsSealKey(hsm: Hsm, record: SealRecord): boolean {
  return findSealKey(hsm, record) !== null;
}

/** The token key that seals `record`, of the kind its method uses (null: not in this token). */
function findSealKey(hsm: Hsm, record: SealRecord): HsmKey | null {
  return hsm.findKey(record.sealKeyLabel, sealMethodOf(record) === 'aes-gcm' ? 'aes256' : RSA_SEAL_KIND);
}

/** What wraps the store's wrapped-protection material (v1: the HSM wrap key). */
export function materialWrapOf(record: SealRecord): MaterialWrap {
  return record.version === 1 ? { mode: 'hsm', keyLabel: record.wrapKeyLabel } : record.wrap;
}

export interface Unsealed {
  record: SealRecord;
  rootKey: Buffer;
  /** `rootKey`'s generation (from the seal record). */
  generation: number;
  sealKey: HsmKey;
  /** What wraps wrapped-protection material, and its HSM key when that is in the token. */
  wrap: MaterialWrap;
  wrapKey: HsmKey | null;
}

/**
 * The seal method this token can do, by probing: AES-GCM on the device where it exists, else
 * RSA-OAEP (decrypt on the device, encrypt locally) with RSA-PSS to sign the record.
 */
export function chooseSealMethod(capabilities: HsmCapabilities): SealMethod {
  if (capabilities.aesGcm) return 'aes-gcm';
  if (capabilities.rsaKeyGen && capabilities.rsaOaepDecrypt && capabilities.rsaPss) return 'rsa-oaep';
  throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token can seal with neither AES-GCM nor RSA-OAEP (it needs AES-GCM, or RSA key-pair generation, RSA-PKCS-OAEP decryption and RSA-PKCS-PSS)');
}

/** AES-GCM AAD of a v2 root key: the generation is bound, so a record cannot claim another one. */
function aadV2(generation: number): Buffer {
  return Buffer.from(`keyhold/seal/root-key/v2\0${generation}`, 'utf8');
}

/** What the rsa-oaep signature covers: everything that decides which root key this store has. */
function rootKeyBinding(record: SealRecordV2, ciphertext: Buffer): Buffer {
  return Buffer.from(JSON.stringify(['keyhold/seal/root-key/v2', record.method, record.sealKeyLabel, record.publicKeySpki, record.oaepHash, record.rootKeyGeneration, ciphertext.toString('base64')]), 'utf8');
}

function publicKeyOf(record: SealRecordV2): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(record.publicKeySpki ?? '', 'base64'), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record\'s public key is not a valid SPKI key', { cause });
  }
}

/**
 * The seal record as stored (null: not initialised), parsed and with its exact bytes, which a
 * rewrite names in its compare-and-set (replaceSealRecord, a rotation's atomic write).
 */
export async function readSealRecord(storage: Storage): Promise<{ record: SealRecord; raw: Buffer } | null> {
  const raw = await storage.get(SEAL_RECORD_KEY);
  if (!raw) return null;
  let record: SealRecord;
  try {
    record = JSON.parse(raw.toString('utf8')) as SealRecord;
  } catch (cause) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record in storage is not valid JSON', { cause });
  }
  const version = (record as { version?: unknown }).version;
  if (version !== 1 && version !== 2) throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record has version ${String(version)}, which this keyhold does not know`);
  return { record, raw };
}

/**
 * Replaces the seal record only if it still has the bytes `expected` (compare-and-set): a
 * concurrent rewrite (another migration, a rotation) makes this one lose, and say so (false).
 */
export async function replaceSealRecord(storage: Storage, expected: Buffer, record: SealRecord): Promise<boolean> {
  return storage.atomic([{ key: SEAL_RECORD_KEY, value: expected }], [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(record)) }]);
}

export async function isInitialized(storage: Storage): Promise<boolean> {
  return (await readSealRecord(storage)) !== null;
}

/**
 * The seal record protecting `rootKey` (of `generation`) on `hsm`, as this store seals: the method
 * by probing `hsm`, data-object mode and the material wrap as `previous` had them unless `options`
 * say otherwise; never `previous.recovery` (it wraps a root key under R: the caller recomputes it,
 * barrier/recovery.ts recoveryFieldsFor). Keys are made as needed (the previous seal key is reused on the same token when
 * the method is the same); a data object is made per call. Writes no storage: `discard()` removes
 * what this call made in the token when the caller's storage write loses.
 */
export async function protectRoot(hsm: Hsm, rootKey: Buffer, generation: number, previous: SealRecord | null, options: SealOptions = {}): Promise<{ record: SealRecord; discard(): Promise<void> }> {
  if (rootKey.length !== ROOT_KEY_BYTES) throw new KeyholdError('ERR_INTERNAL', 'the root key must be 256 bits');
  const method = chooseSealMethod(hsm.capabilities);
  const dataObject = options.dataObject ?? (previous?.version === 2 && previous.rootKeyObject !== undefined);
  const suffix = randomBytes(4).toString('hex');
  const made: Array<() => Promise<void>> = [];
  const discard = async (): Promise<void> => {
    let first: unknown;
    for (const undo of made.splice(0).reverse()) {
      try { await undo(); } catch (err) { first ??= err; }
    }
    if (first) throw first;
  };
  try {
    const reusable = previous && previous.tokenSerial === hsm.token.serial && sealMethodOf(previous) === method ? previous : null;
    const record: SealRecordV2 = {
      version: 2,
      method,
      sealKeyLabel: '',
      wrap: options.wrap ?? (previous ? materialWrapOf(previous) : { mode: 'memory' }),
      tokenSerial: hsm.token.serial,
      createdAt: new Date().toISOString(),
      rootKeyGeneration: generation,
    };
    let ciphertext: Buffer;
    if (method === 'aes-gcm') {
      let sealKey = reusable ? hsm.findKey(reusable.sealKeyLabel, 'aes256') : null;
      if (!sealKey) {
        const generated = await hsm.generateKey(`keyhold/seal/${suffix}`, 'aes256');
        made.push(() => hsm.destroyKey(generated));
        sealKey = generated;
      }
      record.sealKeyLabel = sealKey.label;
      ciphertext = await hsm.aesGcmEncrypt(sealKey, rootKey, aadV2(generation));
    } else {
      let sealKey = reusable?.version === 2 && reusable.publicKeySpki && reusable.oaepHash ? hsm.findKey(reusable.sealKeyLabel, RSA_SEAL_KIND) : null;
      if (sealKey && reusable?.version === 2) {
        record.publicKeySpki = reusable.publicKeySpki;
        record.oaepHash = reusable.oaepHash;
      } else {
        const generated = await hsm.generateKey(`keyhold/seal/${suffix}`, RSA_SEAL_KIND);
        made.push(() => hsm.destroyKey(generated));
        if (!generated.publicKeySpki) throw new KeyholdError('ERR_HSM', 'the HSM returned no public key for the RSA seal key');
        sealKey = generated;
        record.publicKeySpki = generated.publicKeySpki.toString('base64');
        record.oaepHash = await hsm.probeOaepHash(generated, publicKeyOf(record));
      }
      record.sealKeyLabel = sealKey.label;
      // Locally, with the public key: an RSA-only token may decrypt OAEP without encrypting it.
      ciphertext = publicEncrypt({ key: publicKeyOf(record), padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: record.oaepHash }, rootKey);
      record.signature = (await hsm.sign(sealKey, rootKeyBinding(record, ciphertext))).toString('base64');
    }
    // A fresh store: the HSM wrap key where the token does AES-GCM (as before), else the in-memory one.
    if (!previous && !options.wrap && hsm.capabilities.aesGcm) {
      const wrapKey = await hsm.generateKey(`keyhold/wrap/${suffix}`, 'aes256');
      made.push(() => hsm.destroyKey(wrapKey));
      record.wrap = { mode: 'hsm', keyLabel: wrapKey.label };
    }
    if (dataObject) {
      const label = `keyhold/seal/root/${suffix}`;
      await hsm.putDataObject(label, ciphertext);
      made.push(() => hsm.destroyDataObject(label));
      record.rootKeyObject = label;
    } else {
      record.wrappedRootKey = ciphertext.toString('base64');
    }
    return { record, discard };
  } catch (err) {
    await discard().catch(() => { /* the failure itself is what the caller must see */ });
    throw err;
  }
}

/**
 * First start: a random root key, protected by protectRoot (fresh token keys whose labels carry a
 * random suffix, so a reused token never hands an old key to a new store), and the seal record
 * written only if no other process wrote one first.
 */
export async function initializeSeal(storage: Storage, hsm: Hsm, options: SealOptions = {}): Promise<Unsealed> {
  if (await isInitialized(storage)) throw new KeyholdError('ERR_ALREADY_INITIALIZED', 'this store is already initialised');
  const rootKey = randomBytes(ROOT_KEY_BYTES);
  try {
    const { record, discard } = await protectRoot(hsm, rootKey, FIRST_GENERATION, null, options);
    const created = await storage.atomic([{ key: SEAL_RECORD_KEY, value: null }], [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(record)) }]);
    if (!created) {
      // Lost the race: what was just made will never be used, so it must not linger in the token.
      await discard();
      throw new KeyholdError('ERR_ALREADY_INITIALIZED', 'another process initialised this store first');
    }
    return { ...keysOf(hsm, record), record, rootKey, generation: FIRST_GENERATION };
  } catch (err) {
    zeroize(rootKey);
    throw err;
  }
}

/** The token keys a record names; every one must be there. */
function keysOf(hsm: Hsm, record: SealRecord): { sealKey: HsmKey; wrap: MaterialWrap; wrapKey: HsmKey | null } {
  const wrap = materialWrapOf(record);
  const sealKey = findSealKey(hsm, record);
  const wrapKey = wrap.mode === 'hsm' ? hsm.findKey(wrap.keyLabel, 'aes256') : null;
  const missing = [!sealKey && record.sealKeyLabel, wrap.mode === 'hsm' && !wrapKey && wrap.keyLabel].filter(Boolean);
  if (!sealKey || missing.length > 0) {
    throw new KeyholdError('ERR_HSM_KEY_MISSING', `HSM key(s) ${missing.join(', ')} not found in token "${hsm.token.label}" (serial ${hsm.token.serial}); this store was sealed by token serial ${record.tokenSerial}`);
  }
  return { sealKey, wrap, wrapKey };
}

/** The wrapped root key, from the record or from the token's data object. */
async function wrappedRootKeyOf(hsm: Hsm, record: SealRecord): Promise<Buffer> {
  if (record.version === 1 || record.rootKeyObject === undefined) {
    if (typeof record.wrappedRootKey !== 'string') throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record holds no wrapped root key');
    return Buffer.from(record.wrappedRootKey, 'base64');
  }
  const stored = await hsm.getDataObject(record.rootKeyObject);
  if (!stored) {
    throw new KeyholdError('ERR_HSM_KEY_MISSING', `HSM data object "${record.rootKeyObject}", which holds this store's wrapped root key, is not in token "${hsm.token.label}" (serial ${hsm.token.serial}); this store was sealed by token serial ${record.tokenSerial}`);
  }
  return stored;
}

/** rsa-oaep: the signature is the seal key's, and the record's public key is that key's public half. */
async function checkRsaRecord(hsm: Hsm, record: SealRecordV2, sealKey: HsmKey, ciphertext: Buffer): Promise<void> {
  const publicKey = publicKeyOf(record);
  const signature = Buffer.from(record.signature ?? '', 'base64');
  if (!verify('sha256', rootKeyBinding(record, ciphertext), { key: publicKey, ...RSA_PSS }, signature)) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record's signature does not verify: it was not written by HSM key "${record.sealKeyLabel}"`);
  }
  // A record with an attacker's own public key and signature verifies above; only the token can sign this.
  const challenge = randomBytes(32);
  if (!verify('sha256', challenge, { key: publicKey, ...RSA_PSS }, await hsm.sign(sealKey, challenge))) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record's public key is not that of HSM key "${record.sealKeyLabel}"`);
  }
}

/**
 * Auto-unseal: the HSM decrypts the root key. Reads only; a missing key or data object, or a token
 * that cannot decrypt, leaves storage untouched.
 */
export async function unseal(storage: Storage, hsm: Hsm): Promise<Unsealed> {
  const stored = await readSealRecord(storage);
  if (!stored) throw new KeyholdError('ERR_NOT_INITIALIZED', 'this store has not been initialised');
  return unsealRecord(hsm, stored.record);
}

/** `unseal` of a seal record the caller has already read (readSealRecord). */
export async function unsealRecord(hsm: Hsm, record: SealRecord): Promise<Unsealed> {
  const generation = rootKeyGeneration(record);
  const keys = keysOf(hsm, record);
  const ciphertext = await wrappedRootKeyOf(hsm, record);
  let rootKey: Buffer;
  try {
    if (record.version === 1) {
      rootKey = await hsm.aesGcmDecrypt(keys.sealKey, ciphertext, ROOT_KEY_AAD_V1);
    } else if (record.method === 'aes-gcm') {
      rootKey = await hsm.aesGcmDecrypt(keys.sealKey, ciphertext, aadV2(generation));
    } else if (record.method === 'rsa-oaep') {
      await checkRsaRecord(hsm, record, keys.sealKey, ciphertext);
      rootKey = await hsm.rsaDecrypt(keys.sealKey, ciphertext, record.oaepHash === 'sha1' ? 'sha1' : 'sha256');
    } else {
      throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record names seal method ${String((record as { method?: unknown }).method)}, which this keyhold does not know`);
    }
  } catch (err) {
    if (isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) {
      throw new KeyholdError('ERR_BARRIER_INTEGRITY', `HSM key "${record.sealKeyLabel}" does not unwrap this store's root key`);
    }
    throw err;
  }
  if (rootKey.length !== ROOT_KEY_BYTES) {
    zeroize(rootKey);
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `HSM key "${record.sealKeyLabel}" unwrapped a root key of the wrong length`);
  }
  return { ...keys, record, rootKey, generation };
}
