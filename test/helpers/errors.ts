import assert from 'node:assert/strict';
import { isKeyholdError, type KeyholdErrorCode } from '../../src/errors.js';

/**
 * The check for `assert.throws` / `assert.rejects`: a KeyholdError with exactly `code` (and a
 * message matching `message`, when given). Anything else fails the test saying what came instead.
 */
export function keyholdCode(code: KeyholdErrorCode, message?: RegExp): (err: unknown) => true {
  return (err: unknown) => {
    if (!isKeyholdError(err, code)) assert.fail(`expected KeyholdError ${code}, got ${isKeyholdError(err) ? `${err.code}: ${err.message}` : String(err)}`);
    if (message && !message.test(err.message)) assert.fail(`expected KeyholdError ${code} with a message matching ${message}, got: ${err.message}`);
    return true;
  };
}
