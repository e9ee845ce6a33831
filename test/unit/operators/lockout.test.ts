/** Lockout with back-off (src/operators/lockout.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { afterFailure, lockedFor, lockSeconds, MemoryLockout } from '../../../src/operators/lockout.js';

const S = { threshold: 5, baseSeconds: 30, maxSeconds: 900 };

describe('lockout', () => {
  it('locks at the threshold, doubles after each further failure, and stops at the cap', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50].map((n) => lockSeconds(n, S)), [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
  });

  it('counts failures and tells how long is left', () => {
    let state = afterFailure(undefined, S, 0);
    for (let i = 0; i < 4; i++) state = afterFailure(state, S, 0);
    assert.equal(state.failures, 5);
    assert.equal(lockedFor(state, 0), 30);
    assert.equal(lockedFor(state, 29_001), 1);
    assert.equal(lockedFor(state, 30_000), 0);
  });

  it('in memory: per key, reset by a success, bounded', () => {
    const m = new MemoryLockout({ threshold: 2, baseSeconds: 10, maxSeconds: 10 }, 100);
    m.failed('a', 0);
    assert.equal(m.lockedFor('a', 0), 0);
    m.failed('a', 0);
    assert.equal(m.lockedFor('a', 0), 10);
    assert.equal(m.lockedFor('b', 0), 0);
    m.succeeded('a');
    assert.equal(m.lockedFor('a', 0), 0);
    for (let i = 0; i < 1000; i++) m.failed(`k${i}`, 0);
    assert.ok((m as unknown as { states: Map<string, unknown> }).states.size <= 100);
  });
});
