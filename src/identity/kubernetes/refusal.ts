/**
 * How a login step says no. Login (login.ts) runs its steps in a fixed order, and each step fails
 * with one kind of error only, as sigstore's verifier does: a refusal names its step in
 * `details.step` (never sent to the client; tests and logs read it) and its reason in
 * `details.reason` (the audit record's reason). A failure of what a step relies on (storage,
 * kube-apiserver unreachable) is not a verdict and passes through as it is.
 */
import { KeyholdError } from '../../errors.js';

/**
 * The steps, in the order they run; `configured` fails with ERR_NOT_FOUND, `synced` with
 * ERR_KUBERNETES_NOT_SYNCED, every other one with ERR_PERMISSION_DENIED.
 */
export type LoginStep = 'configured' | 'role' | 'jwt' | 'binding' | 'synced' | 'live' | 'attestation' | 'issue';

/** The refusal of a step whose verdict is about the caller (403). */
export function refused(step: Exclude<LoginStep, 'configured' | 'synced'>, reason: string): KeyholdError {
  return new KeyholdError('ERR_PERMISSION_DENIED', `login denied: ${reason}`, { details: { reason, step } });
}
