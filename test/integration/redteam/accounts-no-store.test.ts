/**
 * Red team, accounts and console: answers that carry a credential or a secret (a login's token,
 * the TOTP secret and QR code of an enrolment, the recovery codes, a console session's CSRF token,
 * a secret read through the console's cookie) must say `Cache-Control: no-store` (RFC 6749 §5.1
 * for token answers; OWASP ASVS 8.2.1), or a browser's disk cache or a caching proxy may keep them.
 * keyhold sent no Cache-Control at all. Real `keyhold dev` server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { totpCodeAt } from '../../../src/operators/totp.js';
import { startDev, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertOk, request, type RawResponse } from '../api/api-helpers.js';
import { PASSWORD } from '../operators/support.js';

let server: DevServer | undefined;
const api = apiCaller(() => ({ address: (server as DevServer).address, root: (server as DevServer).rootToken }));

function assertNoStore(res: RawResponse, what: string): void {
  assert.match(String(res.headers['cache-control'] ?? ''), /\bno-store\b/, `${what}: Cache-Control is ${res.headers['cache-control']}`);
}

describe('red team: credentials and secrets are never cacheable', { timeout: 120_000 }, () => {
  before(async () => {
    server = await startDev();
    await api.asRoot('PUT', '/v1/policies/people', { rules: [{ path: 'secrets/*', capabilities: ['read'] }, { path: 'sys/tokens', capabilities: ['create'] }] });
    await api.asRoot('PUT', '/v1/sys/groups/people', { policies: ['people'], members: ['finn'], external_groups: [] });
    await api.asRoot('PUT', '/v1/secrets/app/db', { data: { password: 'hunter2-db' } });
    await api.asRoot('POST', '/v1/sys/operators', { name: 'finn', password: PASSWORD });
  });
  after(async () => {
    await server?.stop();
  });

  it('login, enrolment, recovery codes, sessions, tokens and secret reads say no-store', async () => {
    const address = (server as DevServer).address;
    const begun = await api.call(undefined, 'POST', '/v1/auth/operator/enrol', { username: 'finn', password: PASSWORD });
    assertOk(begun, 200, 'enrol');
    assertNoStore(begun, 'enrol (TOTP secret)');
    const secret = new URL(begun.body.otpauth_uri).searchParams.get('secret') as string;
    const confirmed = await api.call(undefined, 'POST', '/v1/auth/operator/enrol/confirm', { username: 'finn', password: PASSWORD, code: await totpCodeAt(secret, Date.now() - 30_000) });
    assertOk(confirmed, 200, 'confirm');
    assertNoStore(confirmed, 'enrol confirm (recovery codes)');
    const codes = confirmed.body.recovery_codes as string[];
    const loggedIn = await api.call(undefined, 'POST', '/v1/auth/operator/login', { username: 'finn', password: PASSWORD, recovery_code: codes[0] });
    assertOk(loggedIn, 200, 'login');
    assertNoStore(loggedIn, 'login (token)');
    const session = await api.call(undefined, 'POST', '/v1/auth/operator/login', { username: 'finn', password: PASSWORD, recovery_code: codes[1], session: true });
    assertOk(session, 200, 'session login');
    assertNoStore(session, 'session login (cookie, CSRF token)');
    const cookie = (session.headers['set-cookie'] ?? []).map((l) => l.split(';')[0]).join('; ');
    const me = await request(address, { method: 'GET', path: '/v1/auth/session', headers: { cookie } });
    assertOk(me, 200, 'whoami');
    assertNoStore(me, 'GET /v1/auth/session (CSRF token)');
    const read = await request(address, { method: 'GET', path: '/v1/secrets/app/db', headers: { cookie } });
    assertOk(read, 200, 'secret read by the console');
    assertNoStore(read, 'secret read with the session cookie');
    const bootstrap = await request(address, { method: 'POST', path: '/v1/auth/token/session', token: loggedIn.body.token });
    assertOk(bootstrap, 200, 'token session');
    assertNoStore(bootstrap, 'token session');
    const child = await api.call(loggedIn.body.token, 'POST', '/v1/tokens', { policies: ['people'] });
    assertOk(child, 200, 'child token');
    assertNoStore(child, 'POST /v1/tokens');
    // A refusal too (it can name the account's state).
    const refused = await api.call(undefined, 'POST', '/v1/auth/operator/login', { username: 'finn', password: 'wrong password here', totp: '123456' });
    assertNoStore(refused, 'refused login');
  });
});
