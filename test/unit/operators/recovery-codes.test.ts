/** Recovery codes (src/operators/recovery-codes.ts): ten, 80 random bits each, stored as hashes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findRecoveryCode, hashRecoveryCode, newRecoveryCodes, RECOVERY_CODE_COUNT } from '../../../src/operators/recovery-codes.js';

describe('recovery codes', () => {
  it('are ten distinct 80-bit codes, and only their hashes are kept', () => {
    const { codes, hashes } = newRecoveryCodes();
    assert.equal(codes.length, RECOVERY_CODE_COUNT);
    assert.equal(new Set(codes).size, RECOVERY_CODE_COUNT);
    for (const c of codes) assert.match(c, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
    for (const h of hashes) {
      assert.match(h, /^[0-9a-f]{64}$/);
      for (const c of codes) assert.equal(h.includes(c.replace(/-/g, '')), false);
    }
  });

  it('match typed loosely (case, dashes or spaces), and only themselves', () => {
    const { codes, hashes } = newRecoveryCodes();
    const c = codes[3] as string;
    assert.equal(findRecoveryCode(hashes, c), 3);
    assert.equal(findRecoveryCode(hashes, c.toUpperCase()), 3);
    assert.equal(findRecoveryCode(hashes, c.replace(/-/g, ' ')), 3);
    assert.equal(findRecoveryCode(hashes, c.replace(/-/g, '')), 3);
    assert.equal(findRecoveryCode(hashes, c.slice(0, -1) + (c.endsWith('a') ? 'b' : 'a')), -1);
    assert.equal(findRecoveryCode(hashes, ''), -1);
    assert.equal(findRecoveryCode(hashes, '123456'), -1);
    assert.equal(findRecoveryCode([], c), -1);
    assert.equal(hashRecoveryCode(c), hashes[3]);
  });
});
