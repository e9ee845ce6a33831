/**
 * Operator accounts (src/operators/store.ts) on a real barrier over SQLite: enrolment, login with
 * TOTP or a recovery code, replay, lockout, and the re-authentication approvals use.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { isKeyholdError, type KeyholdErrorCode } from '../../../src/errors.js';
import { OperatorStore } from '../../../src/operators/store.js';
import { totpCodeAt } from '../../../src/operators/totp.js';
import type { OperatorRecord } from '../../../src/operators/types.js';
import { sqliteFile } from '../barrier/support.js';

const PASSWORD = 'a long enough password';
const code = (c: KeyholdErrorCode, reason?: string) => (e: unknown) => isKeyholdError(e, c) && (reason === undefined || e.details?.reason === reason);

function setUp(what: string) {
  const storage = sqliteFile(what).open();
  const barrier = new Barrier(storage, randomBytes(32));
  let now = 1_700_000_000_000;
  const clock = { get: () => now, advance: (ms: number) => { now += ms; } };
  const view = barrier.view(MOUNTS.operators);
  const store = new OperatorStore(view, { lockout: { threshold: 3, baseSeconds: 10, maxSeconds: 40 }, now: clock.get });
  return { store, view, clock, barrier };
}

/** Creates and enrols `name`; returns its TOTP secret and recovery codes. */
async function enrolled(store: OperatorStore, clock: { get(): number }, name: string): Promise<{ secret: string; codes: string[] }> {
  await store.create(name, PASSWORD);
  const { secret, uri } = await store.beginEnrolment(name, PASSWORD);
  assert.ok(uri.includes(secret));
  const { recoveryCodes } = await store.confirmEnrolment(name, PASSWORD, await totpCodeAt(secret, clock.get()));
  return { secret, codes: recoveryCodes };
}

describe('operator accounts', () => {
  it('enrol, then log in with a TOTP code; the same code twice is a replay', async () => {
    const { store, clock } = setUp('ops-login');
    await store.create('alice', PASSWORD);
    await assert.rejects(store.authenticate('alice', PASSWORD, { totp: '000000' }), code('ERR_ENROLMENT_REQUIRED'));
    const { secret, codes } = await enrolled(store, clock, 'anna');
    assert.equal(codes.length, 10);
    clock.advance(30_000);
    const totp = await totpCodeAt(secret, clock.get());
    const who = await store.authenticate('anna', PASSWORD, { totp });
    assert.equal(who.name, 'anna');
    assert.equal(who.enrolled, true);
    await assert.rejects(store.authenticate('anna', PASSWORD, { totp }), code('ERR_LOGIN_FAILED', 'totp-replay'));
    await assert.rejects(store.authenticate('anna', PASSWORD, { totp: totp === '123456' ? '654321' : '123456' }), code('ERR_LOGIN_FAILED', 'totp'));
    await assert.rejects(store.authenticate('anna', 'the wrong password!', { totp }), code('ERR_LOGIN_FAILED', 'password'));
    await assert.rejects(store.authenticate('nobody', PASSWORD, { totp }), code('ERR_LOGIN_FAILED', 'unknown-user'));
  });

  it('keeps only hashes and the encrypted secret: no recovery code or password in the record', async () => {
    const { store, clock, view } = setUp('ops-record');
    const { secret, codes } = await enrolled(store, clock, 'bob');
    const record = await view.get<OperatorRecord>('accounts/bob');
    const text = JSON.stringify(record);
    assert.equal(text.includes(PASSWORD), false);
    for (const c of codes) assert.equal(text.includes(c), false);
    assert.equal(record?.totp?.secret, secret);
    assert.equal(record?.pendingTotp, undefined);
  });

  it('a recovery code works once', async () => {
    const { store, clock } = setUp('ops-recovery');
    const { codes } = await enrolled(store, clock, 'carol');
    await store.authenticate('carol', PASSWORD, { recoveryCode: codes[0] as string });
    assert.equal((await store.describe('carol')).recoveryCodesLeft, 9);
    await assert.rejects(store.authenticate('carol', PASSWORD, { recoveryCode: codes[0] as string }), code('ERR_LOGIN_FAILED', 'recovery-code'));
    await store.verifySecondFactor('carol', codes[1] as string);
    await assert.rejects(store.verifySecondFactor('carol', codes[1] as string), code('ERR_SECOND_FACTOR_INVALID', 'recovery-code'));
  });

  it('two concurrent logins with one code: exactly one succeeds', async () => {
    const { store, clock } = setUp('ops-race');
    const { secret } = await enrolled(store, clock, 'dave');
    clock.advance(30_000);
    const totp = await totpCodeAt(secret, clock.get());
    const results = await Promise.allSettled([store.authenticate('dave', PASSWORD, { totp }), store.authenticate('dave', PASSWORD, { totp })]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  });

  it('locks after the threshold with back-off, refuses even the right credentials meanwhile, and resets on success', async () => {
    const { store, clock } = setUp('ops-lock');
    const { secret } = await enrolled(store, clock, 'erin');
    const wrong = () => store.authenticate('erin', 'the wrong password!', { totp: '000000' });
    const right = async () => store.authenticate('erin', PASSWORD, { totp: await totpCodeAt(secret, clock.get()) });
    for (let i = 0; i < 3; i++) await assert.rejects(wrong(), code('ERR_LOGIN_FAILED'));
    await assert.rejects(right(), (e) => isKeyholdError(e, 'ERR_ACCOUNT_LOCKED') && e.details?.retryAfterSeconds === 10);
    clock.advance(10_000);
    await assert.rejects(wrong(), code('ERR_LOGIN_FAILED'));
    await assert.rejects(right(), (e) => isKeyholdError(e, 'ERR_ACCOUNT_LOCKED') && e.details?.retryAfterSeconds === 20, 'the lock doubled');
    clock.advance(20_000);
    await right();
    assert.equal((await store.describe('erin')).failures, 0);
    await assert.rejects(wrong(), code('ERR_LOGIN_FAILED'), 'counting starts again');
  });

  it('unknown names get the same answers, lock included', async () => {
    const { store } = setUp('ops-unknown');
    for (let i = 0; i < 3; i++) await assert.rejects(store.authenticate('ghost', PASSWORD, { totp: '000000' }), code('ERR_LOGIN_FAILED', 'unknown-user'));
    await assert.rejects(store.authenticate('ghost', PASSWORD, { totp: '000000' }), code('ERR_ACCOUNT_LOCKED'));
  });

  it('second-factor failures of a logged-in person count toward the lock', async () => {
    const { store, clock } = setUp('ops-reauth');
    const { secret } = await enrolled(store, clock, 'fred');
    clock.advance(30_000);
    await store.verifySecondFactor('fred', await totpCodeAt(secret, clock.get()));
    for (let i = 0; i < 3; i++) await assert.rejects(store.verifySecondFactor('fred', '000000'), code('ERR_SECOND_FACTOR_INVALID'));
    await assert.rejects(store.verifySecondFactor('fred', await totpCodeAt(secret, clock.get() + 30_000)), code('ERR_ACCOUNT_LOCKED'), 'a valid, unused code while locked');
    await assert.rejects(store.verifySecondFactor('nobody', '123456'), code('ERR_SECOND_FACTOR_INVALID'));
  });

  it('enrolment: not for an enrolled account (same answer as a wrong password), again after a reset, and only within its window', async () => {
    const { store, clock } = setUp('ops-enrol');
    const { secret } = await enrolled(store, clock, 'gina');
    await assert.rejects(store.beginEnrolment('gina', PASSWORD), code('ERR_LOGIN_FAILED', 'enrolled'));
    await store.reset('gina', 'another long password');
    const after = await store.describe('gina');
    assert.equal(after.enrolled, false);
    assert.equal(after.recoveryCodesLeft, 0);
    await assert.rejects(store.authenticate('gina', 'another long password', { totp: await totpCodeAt(secret, clock.get()) }), code('ERR_ENROLMENT_REQUIRED'));
    const again = await store.beginEnrolment('gina', 'another long password');
    assert.notEqual(again.secret, secret);
    await assert.rejects(store.confirmEnrolment('gina', 'another long password', await totpCodeAt(secret, clock.get())), code('ERR_LOGIN_FAILED', 'totp'), 'the old secret is gone');
    await store.create('hank', PASSWORD);
    clock.advance(73 * 3600_000);
    await assert.rejects(store.beginEnrolment('hank', PASSWORD), code('ERR_LOGIN_FAILED', 'enrolment-expired'));
  });

  it('changes a password with the old one and a second factor', async () => {
    const { store, clock } = setUp('ops-password');
    const { secret } = await enrolled(store, clock, 'ivan');
    clock.advance(30_000);
    await assert.rejects(store.changePassword('ivan', PASSWORD, { totp: await totpCodeAt(secret, clock.get()) }, 'short'), code('ERR_PASSWORD_POLICY'));
    await store.changePassword('ivan', PASSWORD, { totp: await totpCodeAt(secret, clock.get()) }, 'the new long password');
    clock.advance(30_000);
    await assert.rejects(store.authenticate('ivan', PASSWORD, { totp: await totpCodeAt(secret, clock.get()) }), code('ERR_LOGIN_FAILED', 'password'));
    await store.authenticate('ivan', 'the new long password', { totp: await totpCodeAt(secret, clock.get()) });
  });

  it('create, list, describe, delete', async () => {
    const { store } = setUp('ops-admin');
    await store.create('jane', PASSWORD);
    await assert.rejects(store.create('jane', PASSWORD), code('ERR_OPERATOR_EXISTS'));
    await assert.rejects(store.create('Jane', PASSWORD), code('ERR_BAD_REQUEST'));
    assert.deepEqual(await store.list(), ['jane']);
    await store.delete('jane');
    await assert.rejects(store.describe('jane'), code('ERR_OPERATOR_NOT_FOUND'));
    await assert.rejects(store.delete('jane'), code('ERR_OPERATOR_NOT_FOUND'));
  });
});
