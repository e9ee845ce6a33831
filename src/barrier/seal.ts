import { randomBytes } from 'node:crypto';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { Hsm, HsmKey } from '../hsm/types.js';
import type { Storage } from '../storage/types.js';
import { FIRST_GENERATION, MAX_GENERATION } from './record.js';
import type { RecoveryFields } from './recovery.js';

/** The only record outside the barrier: it holds nothing but ciphertext and HSM key labels. */
export const SEAL_RECORD_KEY = 'core/seal';
const ROOT_KEY_AAD = Buffer.from('keyhold/seal/root-key/v1', 'utf8');

export interface SealRecord {
  version: 1;
  /** HSM AES key that wraps the barrier root key. */
  sealKeyLabel: string;
  /** HSM AES key that wraps `wrapped`-protection user key material; absent with `wrap.mode` 'memory'. */
  wrapKeyLabel?: string;
  /**
   * 'memory': `wrapped` material is wrapped by a key kept in the barrier, not in the HSM
   * (src/keys/protection/material-wrapper.ts); stores with recovery shares use it, so their
   * wrapped keys outlive the token. Absent: the HSM wrap key.
   */
  wrap?: { mode: 'memory' };
  /** Recovery shares (src/barrier/recovery.ts): the root key under the recovery key R. */
  recovery?: RecoveryFields;
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

/** The generation of the root key a seal record holds. */
export function rootKeyGeneration(record: SealRecord): number {
  const generation = record.rootKeyGeneration ?? FIRST_GENERATION;
  if (!Number.isSafeInteger(generation) || generation < FIRST_GENERATION || generation > MAX_GENERATION) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record names root-key generation ${String(generation)}, which is not valid`);
  }
  return generation;
}

export interface Unsealed {
  record: SealRecord;
  rootKey: Buffer;
  /** `rootKey`'s generation (from the seal record). */
  generation: number;
  sealKey: HsmKey;
  /** The HSM wrap key; null when `record.wrap.mode` is 'memory'. */
  wrapKey: HsmKey | null;
}

async function readSealRecord(storage: Storage): Promise<SealRecord | null> {
  const raw = await storage.get(SEAL_RECORD_KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw.toString('utf8')) as SealRecord;
  } catch (cause) {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal record in storage is not valid JSON', { cause });
  }
}

export async function isInitialized(storage: Storage): Promise<boolean> {
  return (await readSealRecord(storage)) !== null;
}

/**
 * First start: two fresh non-extractable AES keys in the token (labels carry a random suffix so a
 * reused token never hands an old key to a new store) and a random root key wrapped by one of them.
 */
export async function initializeSeal(storage: Storage, hsm: Hsm, options: { wrap?: { mode: 'memory' } } = {}): Promise<Unsealed> {
  if (await isInitialized(storage)) throw new KeyholdError('ERR_ALREADY_INITIALIZED', 'this store is already initialised');
  if (!hsm.capabilities.aesGcm) throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token cannot do AES-GCM, which the seal needs');
  const suffix = randomBytes(4).toString('hex');
  const sealKey = await hsm.generateKey(`keyhold/seal/${suffix}`, 'aes256');
  const wrapKey = options.wrap?.mode === 'memory' ? null : await hsm.generateKey(`keyhold/wrap/${suffix}`, 'aes256');
  const rootKey = randomBytes(32);
  const wrapped = await hsm.aesGcmEncrypt(sealKey, rootKey, ROOT_KEY_AAD);
  const record: SealRecord = {
    version: 1,
    sealKeyLabel: sealKey.label,
    ...(wrapKey ? { wrapKeyLabel: wrapKey.label } : { wrap: { mode: 'memory' as const } }),
    wrappedRootKey: wrapped.toString('base64'),
    tokenSerial: hsm.token.serial,
    createdAt: new Date().toISOString(),
    rootKeyGeneration: FIRST_GENERATION,
  };
  const created = await storage.atomic([{ key: SEAL_RECORD_KEY, value: null }], [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(record)) }]);
  if (!created) {
    // Lost the race: the keys just made will never be used, so they must not linger in the token.
    await hsm.destroyKey(sealKey);
    if (wrapKey) await hsm.destroyKey(wrapKey);
    rootKey.fill(0);
    throw new KeyholdError('ERR_ALREADY_INITIALIZED', 'another process initialised this store first');
  }
  return { record, rootKey, generation: FIRST_GENERATION, sealKey, wrapKey };
}

/**
 * Auto-unseal: the HSM decrypts the root key. Reads only; a missing key or a token that cannot
 * decrypt leaves storage untouched.
 */
export async function unseal(storage: Storage, hsm: Hsm): Promise<Unsealed> {
  const record = await readSealRecord(storage);
  if (!record) throw new KeyholdError('ERR_NOT_INITIALIZED', 'this store has not been initialised');
  const sealKey = hsm.findKey(record.sealKeyLabel, 'aes256');
  const inMemoryWrap = record.wrap?.mode === 'memory';
  const wrapKey = inMemoryWrap ? null : hsm.findKey(record.wrapKeyLabel ?? '', 'aes256');
  const generation = rootKeyGeneration(record);
  const missing = [!sealKey && record.sealKeyLabel, !inMemoryWrap && !wrapKey && record.wrapKeyLabel].filter(Boolean);
  if (!sealKey || missing.length > 0) {
    throw new KeyholdError('ERR_HSM_KEY_MISSING', `HSM key(s) ${missing.join(', ')} not found in token "${hsm.token.label}" (serial ${hsm.token.serial}); this store was sealed by token serial ${record.tokenSerial}`);
  }
  try {
    const rootKey = await hsm.aesGcmDecrypt(sealKey, Buffer.from(record.wrappedRootKey, 'base64'), ROOT_KEY_AAD);
    return { record, rootKey, generation, sealKey, wrapKey };
  } catch (err) {
    if (isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) {
      throw new KeyholdError('ERR_BARRIER_INTEGRITY', `HSM key "${record.sealKeyLabel}" does not unwrap this store's root key`);
    }
    throw err;
  }
}

/**
 * The seal record protecting `rootKey` (of `generation`) on `hsm`: a new HSM seal key and the root
 * key wrapped by it. What `previous` says of the rest of the store (its wrap mode or HSM wrap key
 * label) is carried over; its `recovery` is not (it wraps `previous`'s root key: the caller sets it,
 * see recoveryFieldsFor). Writes no storage; `discard()` removes the seal key when the caller's
 * write of the record loses.
 *
 * Minimal AES-GCM-only version (recovery helper); the seal helper's version (RSA-OAEP, data
 * objects) has the same signature and replaces it.
 */
export async function protectRoot(hsm: Hsm, rootKey: Buffer, generation: number, previous: SealRecord | null, _options: Record<string, unknown> = {}): Promise<{ record: SealRecord; discard(): Promise<void> }> {
  if (!hsm.capabilities.aesGcm) throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token cannot do AES-GCM, which the seal needs');
  const sealKey = await hsm.generateKey(`keyhold/seal/${randomBytes(4).toString('hex')}`, 'aes256');
  try {
    const wrapped = await hsm.aesGcmEncrypt(sealKey, rootKey, ROOT_KEY_AAD);
    const record: SealRecord = {
      version: 1,
      sealKeyLabel: sealKey.label,
      ...(previous?.wrapKeyLabel !== undefined ? { wrapKeyLabel: previous.wrapKeyLabel } : {}),
      ...(previous?.wrap ? { wrap: previous.wrap } : {}),
      wrappedRootKey: wrapped.toString('base64'),
      tokenSerial: hsm.token.serial,
      createdAt: new Date().toISOString(),
      rootKeyGeneration: generation,
    };
    return { record, discard: () => hsm.destroyKey(sealKey) };
  } catch (err) {
    await hsm.destroyKey(sealKey).catch(() => undefined);
    throw err;
  }
}
