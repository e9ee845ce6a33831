import { KeyholdError } from '../errors.js';

/**
 * How a failed HSM call counts against the member that made it.
 * - gone: the device, the transport or the login is gone (ERR_HSM_UNAVAILABLE, see ckr.ts): the
 *   member is taken out at once and reconnects; an idempotent call is retried on another member.
 * - transport: a failure that says nothing about the request (CKR_GENERAL_ERROR,
 *   CKR_FUNCTION_FAILED outside a decrypt, where SoftHSM means "bad tag"): only several in a row
 *   take the member out, and the call is not retried (it may be the request's fault after all).
 * - request: the request's own fault (a bad tag, a wrong key, a conflict, a mechanism the token
 *   lacks): never counts, so a client sending bad ciphertexts cannot open anyone's breaker.
 * - unclear: any other ERR_HSM (e.g. CKR_OBJECT_HANDLE_INVALID): the device's when it fails a probe
 *   right after (a token whose store went away answers the call so, and the probe with
 *   CKR_GENERAL_ERROR; measured on SoftHSM), else the request's (a destroyed key, a wrong key
 *   type). The member asks its connection (member.ts).
 */
export type FailureKind = 'gone' | 'transport' | 'request' | 'unclear';

const TRANSPORT_CKR = new Set(['CKR_GENERAL_ERROR', 'CKR_FUNCTION_FAILED', 'CKR_DEVICE_MEMORY', 'CKR_HOST_MEMORY']);

export function failureKind(err: unknown): FailureKind {
  if (!(err instanceof KeyholdError)) return 'transport';
  if (err.code === 'ERR_HSM_UNAVAILABLE') return 'gone';
  if (err.code === 'ERR_HSM') return TRANSPORT_CKR.has(err.details?.ckr as string) ? 'transport' : 'unclear';
  return 'request';
}

/** A wrong or locked PIN: reconnecting would count down the token's PIN tries, so it is never retried. */
export function isFatalForReconnect(err: unknown): boolean {
  return err instanceof KeyholdError && (err.code === 'ERR_HSM_PIN_INCORRECT' || err.code === 'ERR_HSM_PIN_LOCKED');
}

/** Consecutive transport failures that open a member's breaker. */
export const TRANSPORT_FAILURES_TO_OPEN = 5;

/** Back-off between reconnect attempts: doubles from the first to the cap (≤ 500 ms: a member that is back rejoins fast). */
export const RECONNECT_FIRST_MS = 50;
export const RECONNECT_MAX_MS = 500;

export function unavailable(message = 'no HSM member is available'): KeyholdError {
  return new KeyholdError('ERR_HSM_UNAVAILABLE', message);
}
