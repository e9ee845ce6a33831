/**
 * Keyed hashing of sensitive audit values (tokens, plaintexts, secret values): an operator holding
 * the key can check whether a known value appears in the log, but the log alone reveals nothing.
 * The key lives only in a private KeyObject, so it cannot leak through JSON.stringify or inspect.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { KeyholdError } from '../errors.js';

const PREFIX = 'hmac-sha256:';
/** Shorter keys would make offline guessing of low-entropy values cheaper than it needs to be. */
export const MIN_AUDIT_HMAC_KEY_BYTES = 32;

export class AuditHmac {
  readonly #key: KeyObject;

  constructor(key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length < MIN_AUDIT_HMAC_KEY_BYTES) {
      throw new KeyholdError('ERR_CONFIG', `audit HMAC key must be at least ${MIN_AUDIT_HMAC_KEY_BYTES} bytes`);
    }
    this.#key = createSecretKey(Buffer.from(key)); // copy: the caller may zero its buffer
  }

  /** `hmac-sha256:<hex>` of the value (strings are hashed as UTF-8). */
  mac(value: string | Buffer): string {
    return PREFIX + createHmac('sha256', this.#key).update(value).digest('hex');
  }

  /** Constant-time check of whether `recorded` is the MAC of `value`. */
  matches(value: string | Buffer, recorded: string): boolean {
    const expected = Buffer.from(this.mac(value));
    const actual = Buffer.from(recorded);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}
