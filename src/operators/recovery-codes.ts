/**
 * Recovery codes: the way in when the authenticator is lost. Ten per enrolment, each 80 random
 * bits shown once as `xxxx-xxxx-xxxx-xxxx` (base32, no 0/1/8/9 to misread), stored only as
 * SHA-256 hashes, each usable once.
 *
 * A fast hash is enough here, unlike passwords: 80 random bits cannot be guessed from a hash,
 * however fast the hash (2^80 trials), while a memory-hard hash per code would make every
 * recovery login cost ten scrypt runs.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** What a typed code may look like: groups of letters and digits, any case, dashes or spaces optional. */
export const RECOVERY_CODE_PATTERN = /^[A-Za-z2-7](?:[A-Za-z2-7 -]{0,30}[A-Za-z2-7])?$/;

function encode(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** The canonical form a code is hashed in: lower case, without separators. */
const canonical = (code: string): string => code.toLowerCase().replace(/[ -]/g, '');

export const hashRecoveryCode = (code: string): string => createHash('sha256').update(canonical(code), 'utf8').digest('hex');

/** New codes to show once, and the hashes to store. */
export function newRecoveryCodes(): { codes: string[]; hashes: string[] } {
  const codes: string[] = [];
  for (let i = 0; i < RECOVERY_CODE_COUNT; i++) {
    const raw = randomBytes(10);
    const text = encode(raw);
    raw.fill(0);
    codes.push(text.match(/.{4}/g)?.join('-') ?? text);
  }
  return { codes, hashes: codes.map(hashRecoveryCode) };
}

/**
 * The index of `code` among `hashes`, or -1. Every stored hash is compared, in constant time, so
 * the time taken does not say how far down the list a match was.
 */
export function findRecoveryCode(hashes: readonly string[], code: string): number {
  if (!RECOVERY_CODE_PATTERN.test(code)) return -1;
  const candidate = Buffer.from(hashRecoveryCode(code), 'hex');
  let found = -1;
  hashes.forEach((h, i) => {
    const stored = Buffer.from(h, 'hex');
    if (stored.length === candidate.length && timingSafeEqual(stored, candidate) && found < 0) found = i;
  });
  return found;
}
