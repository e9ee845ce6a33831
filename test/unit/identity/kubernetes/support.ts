import assert from 'node:assert/strict';
import { isKeyholdError, type KeyholdErrorCode } from '../../../../src/errors.js';
import type { LoginStep } from '../../../../src/identity/kubernetes/refusal.js';

/** Matcher for assert.throws/rejects: a login refusal by `step`, with its one code, and a reason matching `reason`. */
export function refusedBy(step: LoginStep, reason: RegExp, code: KeyholdErrorCode = 'ERR_PERMISSION_DENIED'): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(isKeyholdError(err), `expected a KeyholdError, got ${String(err)}`);
    assert.deepEqual({ code: err.code, step: err.details?.step }, { code, step });
    assert.match(String(err.details?.reason), reason);
    return true;
  };
}
