/**
 * Operator passwords, hashed with Node's scrypt (no native dependency) at OWASP's equal-cost
 * setting N=2^15, r=8, p=3: 32 MiB and about a quarter of a second per hash here, so a stolen
 * store costs an attacker that much memory and time per guess per account.
 *
 * The stored string describes itself: `$scrypt$v=1$ln=15,r=8,p=3$<salt>$<hash>` (base64 without
 * padding, as PHC strings are). A verification reads the parameters from the string, so raising
 * them later only changes what new hashes use (`needsRehash` tells a login to rewrite an old one).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import type { HashLimiter } from './hash-limit.js';

interface ScryptParams { ln: number; r: number; p: number }

/** The parameters new hashes get. */
export const CURRENT_PARAMS: Readonly<ScryptParams> = { ln: 15, r: 8, p: 3 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Passwords longer than this (in UTF-8 bytes) are refused: nobody types more, and it bounds the work. */
export const MAX_PASSWORD_BYTES = 1024;
/** NIST SP 800-63B's minimum for a password chosen by its user, without composition rules. */
export const MIN_PASSWORD_CHARS = 12;

const FORMAT = /^\$scrypt\$v=1\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$/;

/**
 * scrypt needs 128·N·r bytes (32 MiB here) plus 128·r·p; Node's default maxmem is exactly 32 MiB,
 * which refuses these parameters. Set explicitly with headroom, and bounded: a record asking for
 * more (a corrupted or hostile string) is refused, not allocated (nor one asking for many times the time: p is bounded too).
 */
function maxmemFor(params: ScryptParams): number {
  return 128 * (2 ** params.ln) * params.r + 128 * params.r * params.p + 1024 * 1024;
}
const MAXMEM_CEILING = 256 * 1024 * 1024;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** params.ln, r: params.r, p: params.p, maxmem: maxmemFor(params) };
  // NFKC: the same password typed on two keyboards (composed or decomposed accents) is one password.
  const input = Buffer.from(password.normalize('NFKC'), 'utf8');
  return new Promise((resolve, reject) => {
    scrypt(input, salt, KEY_BYTES, options, (err, key) => {
      input.fill(0);
      if (err) reject(new KeyholdError('ERR_INTERNAL', 'password hashing failed', { cause: err }));
      else resolve(key);
    });
  });
}

const b64 = (buf: Buffer) => buf.toString('base64').replace(/=+$/, '');

/** Refuses passwords outside the length rules (ERR_PASSWORD_POLICY); says nothing about their content. */
export function checkNewPassword(password: string, username: string): void {
  if ([...password.normalize('NFKC')].length < MIN_PASSWORD_CHARS) throw new KeyholdError('ERR_PASSWORD_POLICY', `passwords have at least ${MIN_PASSWORD_CHARS} characters`);
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) throw new KeyholdError('ERR_PASSWORD_POLICY', `passwords have at most ${MAX_PASSWORD_BYTES} bytes`);
  // NIST SP 800-63B: refuse the context's own words. Names under 4 characters are too often inside
  // ordinary words ("dan" in "abundant") to refuse every password containing them.
  const lower = password.normalize('NFKC').toLowerCase();
  const name = username.toLowerCase();
  if (lower === name || (name.length >= 4 && lower.includes(name))) throw new KeyholdError('ERR_PASSWORD_POLICY', 'the password must not contain the username');
}

/** Hashes with a fresh random salt and the current parameters. */
export async function hashPassword(password: string, limiter: HashLimiter): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await limiter.run(() => derive(password, salt, CURRENT_PARAMS));
  const encoded = `$scrypt$v=1$ln=${CURRENT_PARAMS.ln},r=${CURRENT_PARAMS.r},p=${CURRENT_PARAMS.p}$${b64(salt)}$${b64(key)}`;
  key.fill(0);
  return encoded;
}

function parse(stored: string): { params: ScryptParams; salt: Buffer; key: Buffer } {
  const m = FORMAT.exec(stored);
  if (!m) throw new KeyholdError('ERR_INTERNAL', 'stored password hash is not in a known format');
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 10 || params.ln > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 8 || maxmemFor(params) > MAXMEM_CEILING) {
    throw new KeyholdError('ERR_INTERNAL', 'stored password hash has parameters outside the accepted range');
  }
  return { params, salt: Buffer.from(m[4] as string, 'base64'), key: Buffer.from(m[5] as string, 'base64') };
}

/** True when `password` matches `stored`; compared in constant time. */
export async function verifyPassword(stored: string, password: string, limiter: HashLimiter): Promise<boolean> {
  const { params, salt, key } = parse(stored);
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    // Still pay for a hash: a refusal by length must take as long as a wrong password.
    await limiter.run(() => derive('', salt, params));
    return false;
  }
  const candidate = await limiter.run(() => derive(password, salt, params));
  const same = timingSafeEqual(candidate, key);
  candidate.fill(0);
  key.fill(0);
  return same;
}

/** True when `stored` was made with other parameters than new hashes get (rewrite it at the next login). */
export function needsRehash(stored: string): boolean {
  const { params } = parse(stored);
  return params.ln !== CURRENT_PARAMS.ln || params.r !== CURRENT_PARAMS.r || params.p !== CURRENT_PARAMS.p;
}

/**
 * A hash of a random password that was thrown away when this was written: a login for an unknown
 * username is verified against it, so it costs the same scrypt as a wrong password and its timing
 * does not tell which accounts exist. A constant, so no process pays for making it.
 */
export const DUMMY_HASH = '$scrypt$v=1$ln=15,r=8,p=3$qvCoOt55BeromtzA9Nznvw$kQG9pP8DMg7e3ff7rdU4PaxTzTyTr71Gr5/hi+vwwJk';
