/**
 * TOTP second factor (RFC 6238) with otplib: SHA-1, 6 digits, 30 s steps, the settings every
 * authenticator app supports. A code is accepted one step either side of now (clock drift and
 * typing time), and only for a time step later than the last one accepted for that account, so a
 * code seen over a shoulder or in a proxy log cannot be used again inside its window.
 *
 * otplib is loaded on first use: most servers never see an operator login.
 */
import { KeyholdError } from '../errors.js';

export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one. */
export const TOTP_WINDOW_STEPS = 1;
/** 160 bits: RFC 4226's recommended length (and SHA-1's block-sized key). */
const SECRET_BYTES = 20;
export const TOTP_CODE_PATTERN = /^[0-9]{6}$/;

type Otplib = typeof import('otplib');
let loading: Promise<Otplib> | undefined;
const otplib = (): Promise<Otplib> => (loading ??= import('otplib'));

/** A new random secret, base32 (what authenticator apps read). */
export async function newTotpSecret(): Promise<string> {
  return (await otplib()).generateSecret({ length: SECRET_BYTES });
}

/** The otpauth:// URI an authenticator app reads (label `issuer:account`). */
export async function totpUri(issuer: string, account: string, secret: string): Promise<string> {
  return (await otplib()).generateURI({ issuer, label: account, secret, algorithm: 'sha1', digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS });
}

/** The time step `at` (ms) falls in. */
export const timeStepAt = (at: number): number => Math.floor(at / 1000 / TOTP_PERIOD_SECONDS);

/**
 * The time step of `code` if it is valid now (± one step) and later than `afterStep`; otherwise
 * null. The caller stores the step it gets back, and passes it as `afterStep` next time.
 */
export async function checkTotp(secret: string, code: string, afterStep: number | undefined, now = Date.now()): Promise<number | null> {
  if (!TOTP_CODE_PATTERN.test(code)) return null;
  const lib = await otplib();
  const result = await lib.verify({
    secret, token: code, epoch: Math.floor(now / 1000), period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS, algorithm: 'sha1',
    epochTolerance: TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS,
    ...(afterStep !== undefined ? { afterTimeStep: afterStep } : {}),
  });
  if (!result.valid) return null;
  const step = (result as { timeStep?: number }).timeStep;
  if (typeof step !== 'number') throw new KeyholdError('ERR_INTERNAL', 'TOTP verification gave no time step');
  return step;
}

/** The code of `secret` at `at` (ms): for tests and the benchmark's clients, never used to verify. */
export async function totpCodeAt(secret: string, at = Date.now()): Promise<string> {
  return (await otplib()).generate({ secret, epoch: Math.floor(at / 1000), period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS, algorithm: 'sha1' });
}
