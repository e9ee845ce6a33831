import { KeyholdError, type KeyholdErrorCode } from '../errors.js';

/** pkcs11js throws either Pkcs11Error or a plain Error("CKR_X:n"); both carry the CKR name in the message. */
export function ckrName(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : String(err);
  return /CKR_\w+/.exec(message)?.[0];
}

const CODE_BY_CKR: Record<string, KeyholdErrorCode> = Object.assign(Object.create(null) as Record<string, KeyholdErrorCode>, {
  CKR_PIN_INCORRECT: 'ERR_HSM_PIN_INCORRECT',
  CKR_PIN_INVALID: 'ERR_HSM_PIN_INCORRECT',
  CKR_PIN_LEN_RANGE: 'ERR_HSM_PIN_INCORRECT',
  CKR_PIN_LOCKED: 'ERR_HSM_PIN_LOCKED',
  CKR_DEVICE_REMOVED: 'ERR_HSM_UNAVAILABLE',
  CKR_DEVICE_ERROR: 'ERR_HSM_UNAVAILABLE',
  CKR_TOKEN_NOT_PRESENT: 'ERR_HSM_UNAVAILABLE',
  CKR_TOKEN_NOT_RECOGNIZED: 'ERR_HSM_UNAVAILABLE',
  CKR_SESSION_HANDLE_INVALID: 'ERR_HSM_UNAVAILABLE',
  CKR_SESSION_CLOSED: 'ERR_HSM_UNAVAILABLE',
  CKR_CRYPTOKI_NOT_INITIALIZED: 'ERR_HSM_UNAVAILABLE',
  CKR_USER_NOT_LOGGED_IN: 'ERR_HSM_UNAVAILABLE',
  CKR_MECHANISM_INVALID: 'ERR_HSM_MECHANISM_UNSUPPORTED',
  CKR_MECHANISM_PARAM_INVALID: 'ERR_HSM_MECHANISM_UNSUPPORTED',
  CKR_KEY_TYPE_INCONSISTENT: 'ERR_HSM_MECHANISM_UNSUPPORTED',
});

/**
 * Turns a PKCS#11 failure into a KeyholdError. The CKR name goes into the message for operators'
 * logs; api/error-status.ts never shows ERR_HSM* messages to clients verbatim.
 */
export function hsmError(err: unknown, operation: string): KeyholdError {
  if (err instanceof KeyholdError) return err;
  return ckrError(ckrName(err) ?? 'unknown', operation, err);
}

/** The error a call failing with `ckr` gives; also for what an adapter knows before calling the module (a closed connection, a key not found). */
export function ckrError(ckr: string, operation: string, cause?: unknown): KeyholdError {
  return new KeyholdError(CODE_BY_CKR[ckr] ?? 'ERR_HSM', `HSM ${operation} failed: ${ckr}`, { cause, details: { ckr } });
}
