/**
 * Lockout after failed logins against a real `keyhold dev` server: per account (in the barrier:
 * it holds across a restart) with doubling back-off and a reset on success, per client address
 * (in memory), unknown names locked like real ones, and an admin reset unlocking.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../../helpers/processes.js';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk, type RawResponse } from '../api/api-helpers.js';
import { createEnrolled, login, PASSWORD, totp, type Enrolled } from './support.js';

const dataDir = tempDir();
let server: DevServer | undefined;
const api = apiCaller(() => ({ address: (server as DevServer).address, root: (server as DevServer).rootToken }));

/** (Re)starts the server on the same data dir with these lockout settings (THRESHOLD/BASE/MAX). */
async function restart(account: string, address: string): Promise<void> {
  await server?.stop();
  server = await startDev(dataDir, { KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT: account, KEYHOLD_OPERATORS_ADDRESS_LOCKOUT: address });
}

const wrong = (username: string) => login(api, { username, password: 'not the right password', totp: '123456' });

function assertLocked(res: RawResponse, status: number, code: string, maxSeconds: number): number {
  assertError(res, status, code);
  const retry = Number(res.headers['retry-after']);
  assert.ok(retry >= 1 && retry <= maxSeconds, `Retry-After ${res.headers['retry-after']} within 1..${maxSeconds}`);
  return retry;
}

before(async () => {
  await restart('3/60/120', '1000/1/1');
  await api.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys', capabilities: ['list'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['amy', 'ben', 'cat', 'dan'], external_groups: [] });
});
after(async () => {
  await server?.stop();
});

describe('per-account lockout', () => {
  let ben: Enrolled;

  it('holds across a server restart (the lock is in the account\'s barrier record)', async () => {
    ben = await createEnrolled(api, 'ben');
    for (let i = 0; i < 3; i++) assertError(await wrong('ben'), 401, 'ERR_LOGIN_FAILED', `failure ${i + 1}`);
    assertLocked(await login(api, { username: 'ben', password: PASSWORD, totp: await totp(ben.secret) }), 423, 'ERR_ACCOUNT_LOCKED', 60);
    // A base of 5 s, not less: each attempt costs a 32 MiB scrypt, and on a loaded machine a
    // 2 s lock could pass between a failure and the next attempt's check.
    await restart('3/5/10', '1000/1/1');
    assertLocked(await login(api, { username: 'ben', password: PASSWORD, totp: await totp(ben.secret) }), 423, 'ERR_ACCOUNT_LOCKED', 60);
  });

  it('is lifted by an admin reset', async () => {
    await api.asRoot('POST', '/v1/sys/operators/ben/reset', { password: 'a fresh secret phrase' });
    assertError(await login(api, { username: 'ben', password: 'a fresh secret phrase', totp: '123456' }), 403, 'ERR_ENROLMENT_REQUIRED');
  });

  it('locks after the threshold with a doubling delay, refuses the right credentials meanwhile, and resets on success', async () => {
    const amy = await createEnrolled(api, 'amy');
    for (let i = 0; i < 3; i++) assertError(await wrong('amy'), 401, 'ERR_LOGIN_FAILED', `failure ${i + 1}`);
    const first = assertLocked(await login(api, { username: 'amy', password: PASSWORD, totp: await totp(amy.secret) }), 423, 'ERR_ACCOUNT_LOCKED', 5);
    await sleep(first * 1000 + 100);
    assertError(await wrong('amy'), 401, 'ERR_LOGIN_FAILED', 'a failure once the lock has passed');
    const second = assertLocked(await login(api, { username: 'amy', password: PASSWORD, totp: await totp(amy.secret) }), 423, 'ERR_ACCOUNT_LOCKED', 10);
    assert.ok(second > 5, `the lock doubled: ${second} s`);
    await sleep(second * 1000 + 100);
    assertOk(await login(api, { username: 'amy', password: PASSWORD, totp: await totp(amy.secret) }), 200, 'the right credentials once it has passed');
    assertError(await wrong('amy'), 401, 'ERR_LOGIN_FAILED');
    assertError(await wrong('amy'), 401, 'ERR_LOGIN_FAILED');
    assertOk(await login(api, { username: 'amy', password: PASSWORD, totp: await totp(amy.secret, 1) }), 200, 'the success reset the count: two failures do not lock');
  });

  it('locks an unknown name exactly as a real one', async () => {
    for (let i = 0; i < 3; i++) assertError(await wrong('ghost'), 401, 'ERR_LOGIN_FAILED');
    assertLocked(await wrong('ghost'), 423, 'ERR_ACCOUNT_LOCKED', 5);
  });

  it('counts failed re-authentication of a second factor too (enrolment confirmation)', async () => {
    await api.asRoot('POST', '/v1/sys/operators', { name: 'cat', password: PASSWORD });
    assertOk(await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'cat', password: PASSWORD }), 200);
    for (let i = 0; i < 3; i++) assertError(await api.call(undefined, 'POST', '/v1/auth/operator/enrol/confirm', { username: 'cat', password: PASSWORD, code: '000000' }), 401, 'ERR_LOGIN_FAILED');
    assertLocked(await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'cat', password: PASSWORD }), 423, 'ERR_ACCOUNT_LOCKED', 5);
  });
});

describe('per-address lockout', () => {
  it('locks a client address after failures on any names, with back-off, and a success resets it', async () => {
    await restart('1000/1/1', '4/5/10');
    const dan = await createEnrolled(api, 'dan');
    for (const name of ['x1', 'x2', 'dan', 'x3']) assertError(await wrong(name), 401, 'ERR_LOGIN_FAILED', name);
    const first = assertLocked(await login(api, { username: 'dan', password: PASSWORD, totp: await totp(dan.secret) }), 429, 'ERR_ADDRESS_LOCKED', 5);
    await sleep(first * 1000 + 100);
    assertError(await wrong('x4'), 401, 'ERR_LOGIN_FAILED');
    const second = assertLocked(await wrong('x5'), 429, 'ERR_ADDRESS_LOCKED', 10);
    assert.ok(second > 5, `the lock doubled: ${second} s`);
    await sleep(second * 1000 + 100);
    assertOk(await login(api, { username: 'dan', password: PASSWORD, totp: await totp(dan.secret) }), 200);
    for (const name of ['y1', 'y2', 'y3']) assertError(await wrong(name), 401, 'ERR_LOGIN_FAILED', `${name}: counting started again`);
  });
});
