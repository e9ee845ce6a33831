/**
 * The barrier keyring: the root keys of older generations, kept inside the barrier (sealed under
 * the current generation) so the seal record holds only the current root key. Records written
 * under an older generation stay readable until the rotation job has rewritten them; then their
 * keys are dropped from here.
 *
 * It also pins the keys derived from the root key (the audit HMAC key, …): derived once from the
 * root key in use at the first rotation and kept here, so audit HMACs and anything else derived
 * stay the same across rotations without keeping the old root key itself.
 */
import { hkdfSync } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import { zeroize } from '../crypto/zero.js';
import type { Storage } from '../storage/types.js';
import { Barrier, type BarrierRead } from './barrier.js';
import { FIRST_GENERATION, MAX_GENERATION } from './record.js';

export const KEYRING_PATH = 'sys/keyring';

/**
 * Purposes of keys derived from the root key (HKDF-SHA256, info = purpose). A rotation pins each
 * in the keyring. A new derivation from the root key must be listed here, or it would change at
 * the next rotation.
 */
export const ROOT_DERIVED_PURPOSES: string[] = ['keyhold/audit-hmac/v1'];

export interface KeyringRecord {
  version: 1;
  /** Root keys of older generations that records may still name (base64, 32 bytes). */
  keys: Array<{ generation: number; key: string }>;
  /** purpose → derived key (base64), pinned at the first rotation. */
  derived: Record<string, string>;
}

function validGeneration(g: unknown): g is number {
  return typeof g === 'number' && Number.isSafeInteger(g) && g >= FIRST_GENERATION && g <= MAX_GENERATION;
}

function checked(record: KeyringRecord | null): KeyringRecord | null {
  if (record === null) return null;
  const ok = record.version === 1 && Array.isArray(record.keys) && record.keys.every((k) => validGeneration(k.generation) && typeof k.key === 'string')
    && typeof record.derived === 'object' && record.derived !== null;
  if (!ok) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the barrier keyring record is malformed');
  return record;
}

export async function readKeyring(barrier: Pick<Barrier, 'read'>): Promise<BarrierRead<KeyringRecord>> {
  const read = await barrier.read<KeyringRecord>(KEYRING_PATH);
  return { ...read, value: checked(read.value) };
}

/**
 * The barrier of an unsealed store: the seal's root key of its generation, and the older
 * generations' keys from the keyring (sealed under the current one), for records not rewritten
 * yet since a rotation. Returns the keyring too (its pinned derived keys).
 */
export async function openBarrier(storage: Storage, unsealed: { rootKey: Buffer; generation: number }): Promise<{ barrier: Barrier; keyring: KeyringRecord | null }> {
  const barrier = new Barrier(storage, unsealed.rootKey, { generation: unsealed.generation });
  const keyring = (await readKeyring(barrier)).value;
  usePreviousKeysOf(barrier, keyring);
  return { barrier, keyring };
}

/** Makes the barrier hold, besides its current root key, the older generations' keys `keyring` lists. */
export function usePreviousKeysOf(barrier: Barrier, keyring: KeyringRecord | null): void {
  const older = previousKeys(keyring);
  try {
    barrier.usePreviousKeys(older);
  } finally {
    zeroize(...older.values());
  }
}

/** The older generations' root keys a keyring holds (the caller zeroes them once handed to the barrier). */
export function previousKeys(keyring: KeyringRecord | null): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const { generation, key } of keyring?.keys ?? []) {
    const bytes = Buffer.from(key, 'base64');
    if (bytes.length !== 32) throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the keyring's root key of generation ${generation} is not 256 bits`);
    out.set(generation, bytes);
  }
  return out;
}

/** A key derived from the root key for `purpose`: the one pinned in the keyring, else derived from `rootKey`. Never stored elsewhere. */
export function deriveRootKey(rootKey: Buffer, keyring: KeyringRecord | null, purpose: string): Buffer {
  const pinned = keyring?.derived[purpose];
  if (pinned !== undefined) return Buffer.from(pinned, 'base64');
  return Buffer.from(hkdfSync('sha256', rootKey, Buffer.alloc(0), Buffer.from(purpose, 'utf8'), 32));
}

/**
 * The keyring after rotating from `current` (generation `currentGeneration`): the old keyring's
 * keys plus `current`, and every derived key pinned (from `current` if not pinned yet).
 */
export function keyringAfterRotation(old: KeyringRecord | null, currentGeneration: number, current: Buffer): KeyringRecord {
  const keys = (old?.keys ?? []).filter((k) => k.generation !== currentGeneration);
  keys.push({ generation: currentGeneration, key: current.toString('base64') });
  const derived: Record<string, string> = { ...(old?.derived ?? {}) };
  for (const purpose of ROOT_DERIVED_PURPOSES) derived[purpose] ??= deriveRootKey(current, old, purpose).toString('base64');
  return { version: 1, keys, derived };
}

/** The keyring without the root keys of generations below `keep` (no record names them any more). */
export function keyringWithout(old: KeyringRecord, keep: number): KeyringRecord {
  return { ...old, keys: old.keys.filter((k) => k.generation >= keep) };
}
