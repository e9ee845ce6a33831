/**
 * Recovery shares (issue 11): a random recovery key R wraps the root key in the seal record, and R
 * is split with Shamir's scheme (the audited `shamir-secret-sharing` package) into shares that are
 * printed once at initialisation and stored nowhere. With `threshold` of them, `keyhold seal
 * migrate` recovers the root key without the HSM that sealed it, and seals it on a new one.
 *
 * R itself is kept only inside the barrier (`sys/seal/recovery-key`), so a root-key rotation can
 * wrap the new root key under the same R (`recoveryFieldsFor`) and the custodians' shares stay valid.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { combine, split } from 'shamir-secret-sharing';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { BarrierView } from './view.js';

/** What the package accepts: 2 ≤ threshold ≤ shares ≤ 255. */
export const MIN_RECOVERY_SHARES = 2;
export const MAX_RECOVERY_SHARES = 255;
const RECOVERY_KEY_BYTES = 32;
const SHARE_PREFIX = 'khs1';

/** In the seal record (outside the barrier): nothing here opens anything without `threshold` shares. */
export interface RecoveryFields {
  version: 1;
  /** Random id of this store's recovery set; in every share, in the AAD and in the key check. */
  setId: string;
  shares: number;
  threshold: number;
  /** The root key AES-256-GCM-encrypted under R: iv ‖ ciphertext ‖ tag, base64 (AAD: rootKeyAad). */
  wrappedRootKey: string;
  /** HMAC-SHA256 under R of a fixed label: proves combined shares right before anything is written. */
  keyCheck: string;
}

/** R inside the barrier, in the seal view (MOUNTS.seal). */
export const RECOVERY_KEY_KEY = 'recovery-key';
interface RecoveryKeyRecord {
  setId: string;
  shares: number;
  threshold: number;
  /** R, base64. */
  key: string;
}

/** Names the store's recovery set, the purpose and the root key's generation. */
function rootKeyAad(setId: string, generation: number): Buffer {
  return Buffer.from(`keyhold/recovery/root-key/v1\0${setId}\0${generation}`, 'utf8');
}

function keyCheckOf(recoveryKey: Buffer, setId: string): Buffer {
  return createHmac('sha256', recoveryKey).update(`keyhold/recovery/key-check/v1\0${setId}`).digest();
}

/** A short checksum over a share's text: a mistyped or corrupted share is named as such, alone. */
function shareCheck(setId: string, position: number, bytes: Uint8Array): string {
  return createHash('sha256').update(`keyhold/recovery-share/v1\0${setId}\0${position}\0`).update(bytes).digest('hex').slice(0, 8);
}

function refuse(message: string): KeyholdError {
  return new KeyholdError('ERR_RECOVERY_SHARES', `${message}; nothing was written`);
}

/** Refuses share counts the scheme cannot do, before anything is opened or written. */
export function checkRecoveryParameters(shares: number, threshold: number): void {
  const whole = (n: number) => Number.isSafeInteger(n);
  if (!whole(shares) || !whole(threshold) || threshold < MIN_RECOVERY_SHARES || shares < threshold || shares > MAX_RECOVERY_SHARES) {
    throw new KeyholdError('ERR_CONFIG', `recovery shares need ${MIN_RECOVERY_SHARES} ≤ threshold ≤ shares ≤ ${MAX_RECOVERY_SHARES} (got ${String(shares)} shares, threshold ${String(threshold)})`);
  }
}

/** The seal-record fields for `rootKey` (of `generation`) under R. */
function fieldsFor(recoveryKey: Buffer, set: Omit<RecoveryKeyRecord, 'key'>, rootKey: Buffer, generation: number): RecoveryFields {
  return {
    version: 1,
    setId: set.setId,
    shares: set.shares,
    threshold: set.threshold,
    wrappedRootKey: aesGcmSeal(recoveryKey, rootKey, rootKeyAad(set.setId, generation)).toString('base64'),
    keyCheck: keyCheckOf(recoveryKey, set.setId).toString('base64'),
  };
}

export interface NewRecovery {
  fields: RecoveryFields;
  /** The barrier record holding R: write it (seal view, RECOVERY_KEY_KEY) with the seal record. */
  barrierRecord: RecoveryKeyRecord;
  /** One line per custodian, `khs1.<set>.<position>.<share>.<check>`: print once, never store. */
  shares: string[];
}

/** A new R for `rootKey`, split into `shares` shares of which `threshold` recover it. */
export async function createRecovery(rootKey: Buffer, generation: number, shares: number, threshold: number): Promise<NewRecovery> {
  checkRecoveryParameters(shares, threshold);
  const recoveryKey = randomBytes(RECOVERY_KEY_BYTES);
  const set = { setId: randomBytes(8).toString('hex'), shares, threshold };
  let parts: Uint8Array[] = [];
  // The package wants plain Uint8Arrays (it refuses a Buffer): a copy, zeroed with the rest.
  const secret = new Uint8Array(recoveryKey);
  try {
    parts = await split(secret, shares, threshold);
    const encoded = parts.map((bytes, i) => `${SHARE_PREFIX}.${set.setId}.${i + 1}.${Buffer.from(bytes).toString('base64url')}.${shareCheck(set.setId, i + 1, bytes)}`);
    return { fields: fieldsFor(recoveryKey, set, rootKey, generation), barrierRecord: { ...set, key: recoveryKey.toString('base64') }, shares: encoded };
  } finally {
    // The encoded strings cannot be overwritten (JS strings); the bytes behind them can.
    for (const part of parts) part.fill(0);
    secret.fill(0);
    zeroize(recoveryKey);
  }
}

/**
 * For a root-key rotation: the `recovery` field of the new seal record, `newRootKey` wrapped under
 * the store's R (read from the barrier, `view` = MOUNTS.seal), so the shares handed out stay valid.
 * Undefined when the store has no recovery shares. Put the result into the record `protectRoot`
 * returns before writing it; the old record's `recovery` must not be carried over.
 */
export async function recoveryFieldsFor(view: BarrierView, newRootKey: Buffer, generation: number): Promise<RecoveryFields | undefined> {
  const stored = await view.get<RecoveryKeyRecord>(RECOVERY_KEY_KEY);
  if (!stored) return undefined;
  const recoveryKey = Buffer.from(stored.key, 'base64');
  try {
    if (recoveryKey.length !== RECOVERY_KEY_BYTES) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the stored recovery key has the wrong length');
    return fieldsFor(recoveryKey, stored, newRootKey, generation);
  } finally {
    zeroize(recoveryKey);
  }
}

/** One share as given to `keyhold seal migrate`; `source` names it in messages (a file, or stdin line N). */
export interface ShareInput {
  text: string;
  source: string;
}

interface ParsedShare {
  position: number;
  bytes: Buffer;
  source: string;
}

function parseShare(input: ShareInput, fields: RecoveryFields): ParsedShare {
  const parts = input.text.trim().split('.');
  const [prefix, setId, position, body, check] = parts;
  if (parts.length !== 5 || prefix !== SHARE_PREFIX || !setId || !position || !body || !check || !/^[1-9]\d{0,2}$/.test(position) || !/^[A-Za-z0-9_-]+$/.test(body)) {
    throw refuse(`${input.source} is not a keyhold recovery share (expected ${SHARE_PREFIX}.<set>.<n>.<share>.<check>)`);
  }
  if (setId !== fields.setId) throw refuse(`${input.source} belongs to another store's recovery set (${setId}); this store's shares are of set ${fields.setId}`);
  const bytes = Buffer.from(body, 'base64url');
  const n = Number(position);
  if (bytes.length !== RECOVERY_KEY_BYTES + 1 || n > fields.shares || bytes.toString('base64url') !== body || shareCheck(setId, n, bytes) !== check) {
    zeroize(bytes);
    throw refuse(`${input.source} is corrupted (its checksum does not match: a mistyped or altered share)`);
  }
  return { position: n, bytes, source: input.source };
}

/**
 * The root key from `threshold` or more shares. Every refusal (too few, a duplicate, a share of
 * another store, a corrupted share, shares that do not combine to this store's R) happens here,
 * before the caller writes anything; R and the share bytes are zeroed before returning.
 */
export async function recoverRootKey(fields: RecoveryFields, generation: number, inputs: readonly ShareInput[]): Promise<Buffer> {
  const shares: ParsedShare[] = [];
  let recoveryKey: Buffer | undefined;
  try {
    for (const input of inputs) {
      const share = parseShare(input, fields);
      const twin = shares.find((s) => s.position === share.position || s.bytes.equals(share.bytes) || s.bytes[RECOVERY_KEY_BYTES] === share.bytes[RECOVERY_KEY_BYTES]);
      shares.push(share);
      if (twin) throw refuse(`${share.source} is the same share as ${twin.source} (share ${share.position}); each share counts once`);
    }
    if (shares.length < fields.threshold) {
      throw refuse(`${shares.length} distinct share(s) given, but this store needs ${fields.threshold} of its ${fields.shares} recovery shares`);
    }
    const plain = shares.map((s) => new Uint8Array(s.bytes));
    const combined = await combine(plain).finally(() => plain.forEach((p) => p.fill(0)));
    recoveryKey = Buffer.from(combined);
    combined.fill(0);
    const expected = Buffer.from(fields.keyCheck, 'base64');
    const actual = keyCheckOf(recoveryKey, fields.setId);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw refuse('the shares do not combine to this store\'s recovery key (one of them is wrong, though well-formed)');
    }
    try {
      return aesGcmOpen(recoveryKey, Buffer.from(fields.wrappedRootKey, 'base64'), rootKeyAad(fields.setId, generation));
    } catch (err) {
      if (!isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) throw err;
      throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the recovery key is right but does not open the seal record's recovery copy of the root key (generation ${generation}): the seal record was altered`);
    }
  } finally {
    for (const share of shares) zeroize(share.bytes);
    zeroize(recoveryKey);
  }
}
