/** Lockout with back-off (src/operators/lockout.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyholdError, KeyholdError } from '../../../src/errors.js';
import { afterFailure, lockedFor, lockSeconds, MemoryLockout } from '../../../src/operators/lockout.js';
import { OperatorLogins } from '../../../src/operators/login.js';
import { addressKey } from '../../../src/api/client-address.js';

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

describe('red team: per-address lockout and IPv6', () => {
  // The server passes clientKey(request) (api/client-address.ts); the real path is tested in
  // test/integration/api/client-address.test.ts.
  it('counts an IPv6 client by its /64: a fresh address per attempt does not escape the lock', async () => {
    const logins = new OperatorLogins(undefined as never, undefined as never, undefined as never, undefined as never, { addressLockout: { threshold: 3, baseSeconds: 60, maxSeconds: 60 } });
    const failing = () => Promise.reject(new KeyholdError('ERR_LOGIN_FAILED', 'login failed'));
    for (const ip of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:ffff:ffff:fffe']) {
      await assert.rejects(logins.fromAddress(addressKey(ip), failing), (e: unknown) => isKeyholdError(e, 'ERR_LOGIN_FAILED'));
    }
    let ran = false;
    await assert.rejects(logins.fromAddress(addressKey('2001:0db8:0001:0002:abcd::9'), async () => { ran = true; }), (e: unknown) => isKeyholdError(e, 'ERR_ADDRESS_LOCKED'));
    assert.equal(ran, false, 'another address of the same /64 was let through');
    // Another /64, and IPv4, are other clients.
    assert.equal(await logins.fromAddress(addressKey('2001:db8:1:3::1'), async () => 'ok'), 'ok');
    assert.equal(await logins.fromAddress(addressKey('192.0.2.1'), async () => 'ok'), 'ok');
  });
});
