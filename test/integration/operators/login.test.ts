/**
 * Operator accounts against a real `keyhold dev` server (real SoftHSM, SQLite, audit file):
 * enrolment, login with a TOTP code or a recovery code, the refusals (wrong or replayed code,
 * no enrolment, unknown user), the token's identity and policies from groups, sessions, password
 * change, admin reset, and that no password or code reaches the audit log, the server log or storage.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { createEnrolled, enrol, login, PASSWORD, totp, type Enrolled } from './support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
/** Every password, code and secret a test sent or saw: none may be in a log or in storage. */
const secrets = new Set<string>([PASSWORD]);
const remember = (e: Enrolled) => {
  secrets.add(e.secret);
  for (const c of e.recoveryCodes) secrets.add(c);
  return e;
};

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys', capabilities: ['list'] }, { path: 'keys/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/policies/secrets-ops', { rules: [{ path: 'secrets/ops/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['alice', 'bob', 'carol', 'dave'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/ops', { policies: ['keys-read', 'secrets-ops'], members: ['alice'], external_groups: ['Ops Team'] });
});
after(async () => {
  await server?.stop();
});

describe('enrolment', () => {
  it('shows the secret once as an otpauth URI and a QR code, then answers ten recovery codes', async () => {
    const e = remember(await createEnrolled(api, 'alice'));
    assert.equal(new URL(e.uri).protocol, 'otpauth:');
    assert.match(e.qrSvg, /^<svg[\s\S]*<\/svg>\s*$/);
    assert.equal(e.recoveryCodes.length, 10);
    const view = await api.asRoot('GET', '/v1/sys/operators/alice');
    assert.equal(view.enrolled, true);
    assert.equal(view.recovery_codes_left, 10);
    assert.equal(JSON.stringify(view).includes(e.secret), false, 'the secret is never shown again');
  });

  it('cannot be done again without an admin reset: same answer as a wrong password', async () => {
    assertError(await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'alice', password: PASSWORD }), 401, 'ERR_LOGIN_FAILED');
  });

  it('is refused with a wrong confirmation code', async () => {
    await api.asRoot('POST', '/v1/sys/operators', { name: 'erin', password: PASSWORD });
    const begun = await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'erin', password: PASSWORD });
    assertOk(begun, 200);
    const secret = new URL(begun.body.otpauth_uri).searchParams.get('secret') as string;
    secrets.add(secret);
    const right = await totp(secret);
    assertError(await api.call(undefined, 'POST', '/v1/auth/operator/enrol/confirm', { username: 'erin', password: PASSWORD, code: right === '000000' ? '111111' : '000000' }), 401, 'ERR_LOGIN_FAILED');
    assert.equal((await api.asRoot('GET', '/v1/sys/operators/erin')).enrolled, false);
  });
});

describe('login', () => {
  let bob: Enrolled;
  before(async () => {
    bob = remember(await createEnrolled(api, 'bob'));
  });

  it('with a TOTP code: a token whose identity is the operator and whose policies are its groups\'', async () => {
    const res = await login(api, { username: 'bob', password: PASSWORD, totp: await totp(bob.secret) });
    assertOk(res, 200, 'login');
    assert.deepEqual(Object.keys(res.body).sort(), ['accessor', 'expires_at', 'identity', 'policies', 'token']);
    assert.deepEqual(res.body.policies, ['keys-read']);
    assert.deepEqual(res.body.identity, { person: 'operator:bob', operator: 'bob', groups: ['readers'], selectors: ['operator:bob'] });
    const lifetime = Date.parse(res.body.expires_at) - Date.now();
    assert.ok(lifetime > 3500_000 && lifetime <= 3600_000, `a one-hour token, got ${lifetime} ms`);
    const self = await api.call(res.body.token, 'GET', '/v1/tokens/self');
    assertOk(self, 200);
    assert.deepEqual(self.body.policies, ['keys-read']);
    assertOk(await api.call(res.body.token, 'GET', '/v1/keys'), 200, 'keys-read grants list on keys');
    assertError(await api.call(res.body.token, 'GET', '/v1/policies'), 403, 'ERR_PERMISSION_DENIED');
    const accessor = await api.asRoot('GET', `/v1/tokens/accessors/${res.body.accessor}`);
    assert.deepEqual(accessor.selectors, ['operator:bob']);
  });

  it('refuses the same code again inside its window (replay)', async () => {
    const code = await totp(bob.secret, 1);
    assertOk(await login(api, { username: 'bob', password: PASSWORD, totp: code }), 200, 'first use');
    assertError(await login(api, { username: 'bob', password: PASSWORD, totp: code }), 401, 'ERR_LOGIN_FAILED');
  });

  it('refuses a wrong TOTP code', async () => {
    const right = await totp(bob.secret);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    assertError(await login(api, { username: 'bob', password: PASSWORD, totp: wrong }), 401, 'ERR_LOGIN_FAILED');
  });

  it('takes a recovery code once', async () => {
    const code = bob.recoveryCodes[0] as string;
    assertOk(await login(api, { username: 'bob', password: PASSWORD, recovery_code: code }), 200, 'recovery code');
    assertError(await login(api, { username: 'bob', password: PASSWORD, recovery_code: code }), 401, 'ERR_LOGIN_FAILED');
    assert.equal((await api.asRoot('GET', '/v1/sys/operators/bob')).recovery_codes_left, 9);
  });

  it('answers an unknown user exactly as a wrong password, in about the same time', async () => {
    const attempt = async (username: string, password: string) => {
      const t0 = performance.now();
      const res = await login(api, { username, password, totp: '123456' });
      return { res, ms: performance.now() - t0 };
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 3; i++) {
      const u = await attempt(`nobody${i}`, PASSWORD);
      const w = await attempt('carol', `not the password ${i}`);
      assertError(u.res, 401, 'ERR_LOGIN_FAILED', 'unknown user');
      assertError(w.res, 401, 'ERR_LOGIN_FAILED', 'wrong password');
      assert.equal(u.res.body.error.message, w.res.body.error.message);
      unknown.push(u.ms);
      wrong.push(w.ms);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] as number;
    const ratio = median(unknown) / median(wrong);
    assert.ok(ratio > 1 / 3 && ratio < 3, `unknown ${median(unknown).toFixed(0)} ms vs wrong password ${median(wrong).toFixed(0)} ms`);
  });

  it('refuses an account that has not enrolled its second factor (after its right password only)', async () => {
    await api.asRoot('POST', '/v1/sys/operators', { name: 'carol', password: PASSWORD });
    assertError(await login(api, { username: 'carol', password: PASSWORD, totp: '123456' }), 403, 'ERR_ENROLMENT_REQUIRED');
    assertError(await login(api, { username: 'carol', password: 'not the password', totp: '123456' }), 401, 'ERR_LOGIN_FAILED');
  });

  it('refuses an operator whose groups give no policy: no token', async () => {
    const frank = remember(await createEnrolled(api, 'frank'));
    const res = await login(api, { username: 'frank', password: PASSWORD, totp: await totp(frank.secret) });
    assertError(res, 403, 'ERR_NO_POLICIES');
  });

  it('unites the policies of every group naming the operator', async () => {
    const dave = remember(await createEnrolled(api, 'dave'));
    await api.asRoot('PUT', '/v1/sys/groups/ops', { policies: ['keys-read', 'secrets-ops'], members: ['alice', 'dave'], external_groups: [] });
    const res = await login(api, { username: 'dave', password: PASSWORD, totp: await totp(dave.secret) });
    assertOk(res, 200);
    assert.deepEqual(res.body.policies, ['keys-read', 'secrets-ops']);
    assert.deepEqual(res.body.identity.groups, ['ops', 'readers']);
  });

  it('with "session": the token goes into an HttpOnly cookie, the body has a CSRF token instead', async () => {
    const res = await login(api, { username: 'bob', password: PASSWORD, recovery_code: bob.recoveryCodes[1], session: true });
    assertOk(res, 200);
    assert.equal(res.body.token, undefined);
    assert.equal(typeof res.body.csrf_token, 'string');
    assert.deepEqual(res.body.policies, ['keys-read']);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    const session = cookies.find((c) => c.startsWith('keyhold_session='));
    assert.ok(session, `a session cookie: ${cookies.join(' | ')}`);
    assert.match(session, /HttpOnly/i);
    assert.match(session, /Secure/i);
    assert.match(session, /SameSite=Strict/i);
  });

  it('refuses a body with both or neither second factor', async () => {
    assertError(await login(api, { username: 'bob', password: PASSWORD }), 400, 'ERR_BAD_REQUEST');
    assertError(await login(api, { username: 'bob', password: PASSWORD, totp: '123456', recovery_code: 'aaaa-bbbb-cccc-dddd' }), 400, 'ERR_BAD_REQUEST');
  });
});

describe('password change and admin reset', () => {
  it('the operator changes their password with the old one and a second factor', async () => {
    const gail = remember(await createEnrolled(api, 'gail'));
    await api.asRoot('PUT', '/v1/sys/groups/gails', { policies: ['keys-read'], members: ['gail'], external_groups: [] });
    const next = 'a brand new long password';
    secrets.add(next);
    assertError(await api.call(undefined, 'POST', '/v1/auth/operator/password', { username: 'gail', password: 'wrong old password', totp: await totp(gail.secret), new_password: next }), 401, 'ERR_LOGIN_FAILED');
    assertError(await api.call(undefined, 'POST', '/v1/auth/operator/password', { username: 'gail', password: PASSWORD, totp: await totp(gail.secret), new_password: 'short' }), 400, 'ERR_PASSWORD_POLICY');
    assertOk(await api.call(undefined, 'POST', '/v1/auth/operator/password', { username: 'gail', password: PASSWORD, totp: await totp(gail.secret), new_password: next }), 204);
    assertError(await login(api, { username: 'gail', password: PASSWORD, recovery_code: gail.recoveryCodes[0] }), 401, 'ERR_LOGIN_FAILED');
    assertOk(await login(api, { username: 'gail', password: next, recovery_code: gail.recoveryCodes[0] }), 200);
  });

  it('an admin reset sets a new password, clears the second factor and revokes the live tokens; the person enrols again', async () => {
    const hank = remember(await createEnrolled(api, 'hank'));
    await api.asRoot('PUT', '/v1/sys/groups/hanks', { policies: ['keys-read'], members: ['hank'], external_groups: [] });
    const before = await login(api, { username: 'hank', password: PASSWORD, totp: await totp(hank.secret) });
    assertOk(before, 200);
    assertOk(await api.call(before.body.token, 'GET', '/v1/tokens/self'), 200);
    const reset = await api.asRoot('POST', '/v1/sys/operators/hank/reset', { password: 'the reset password 1' });
    secrets.add('the reset password 1');
    assert.equal(reset.enrolled, false);
    assert.equal(reset.revoked_tokens, 1);
    assertError(await api.call(before.body.token, 'GET', '/v1/tokens/self'), 401, 'ERR_UNAUTHENTICATED', 'the old login token');
    assertError(await login(api, { username: 'hank', password: 'the reset password 1', recovery_code: hank.recoveryCodes[0] }), 403, 'ERR_ENROLMENT_REQUIRED');
    const again = remember(await enrol(api, 'hank', 'the reset password 1'));
    assert.notEqual(again.secret, hank.secret);
    assertOk(await login(api, { username: 'hank', password: 'the reset password 1', totp: await totp(again.secret) }), 200);
  });

  it('lists, reads and deletes accounts; a deleted account cannot log in', async () => {
    const list = await api.asRoot('GET', '/v1/sys/operators');
    for (const n of ['alice', 'bob', 'carol']) assert.ok(list.operators.includes(n), n);
    await api.asRoot('DELETE', '/v1/sys/operators/carol', undefined, 204);
    assertError(await api.call(server.rootToken, 'GET', '/v1/sys/operators/carol'), 404, 'ERR_OPERATOR_NOT_FOUND');
    assertError(await login(api, { username: 'carol', password: PASSWORD, totp: '123456' }), 401, 'ERR_LOGIN_FAILED');
    assertError(await api.call(server.rootToken, 'POST', '/v1/sys/operators', { name: 'alice', password: PASSWORD }), 409, 'ERR_OPERATOR_EXISTS');
  });
});

describe('secrets stay out of the logs and storage', () => {
  it('no password, TOTP secret or code, or recovery code in the audit log, the server log or the database file', async () => {
    const audit = readFileSync(join(server.dataDir, 'audit.log'), 'utf8');
    const log = server.output();
    const db = readFileSync(join(server.dataDir, 'keyhold.db')).toString('latin1') + readFileSync(join(server.dataDir, 'keyhold.db-wal'), { flag: 'a+' }).toString('latin1');
    for (const s of secrets) {
      for (const [where, text] of [['audit log', audit], ['server log', log], ['database', db]] as const) {
        assert.equal(text.includes(s), false, `${where} holds "${s.slice(0, 6)}…"`);
        assert.equal(text.includes(s.replace(/-/g, '')), false, `${where} holds a recovery code without dashes`);
      }
    }
  });

  it('every attempt is audited with the username and outcome, and no body HMAC', async () => {
    const records = readFileSync(join(server.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; operation: string; outcome?: { status: number }; fields?: Record<string, string> });
    const logins = records.filter((r) => r.operation === 'auth.operator.login' && r.type === 'response');
    assert.ok(logins.length >= 15, `${logins.length} login outcome records`);
    for (const r of logins) {
      assert.equal(r.fields?.body, undefined, 'no HMAC of a body holding a password');
      if (r.outcome?.status === 400) continue;
      assert.ok(r.fields?.username, JSON.stringify(r));
      assert.ok(r.fields?.outcome === 'success' || r.fields?.outcome === 'failed', JSON.stringify(r));
    }
    const reasons = new Set(logins.map((r) => r.fields?.reason).filter(Boolean));
    for (const reason of ['totp', 'totp-replay', 'recovery-code', 'password', 'unknown-user', 'ERR_ENROLMENT_REQUIRED', 'no-policies']) assert.ok(reasons.has(reason), `reason ${reason} in ${[...reasons].join(',')}`);
    const success = logins.find((r) => r.fields?.outcome === 'success');
    assert.match(success?.fields?.issued_accessor ?? '', /^kha\./);
    for (const op of ['auth.operator.enrol', 'auth.operator.enrol-confirm', 'sys.operators.create', 'sys.operators.reset', 'auth.operator.change-password']) {
      const mine = records.filter((r) => r.operation === op);
      assert.ok(mine.length > 0, op);
      for (const r of mine) assert.equal(r.fields?.body, undefined, `${op}: no body HMAC`);
    }
  });
});
