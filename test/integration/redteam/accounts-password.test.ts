/**
 * Red team, operator accounts: a person who changes their password (because they think it leaked)
 * must not leave the live login tokens and console sessions made with the old one running. A reset
 * and a deletion already revoked them; the person's own change did not. Real `keyhold dev` server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk, request } from '../api/api-helpers.js';
import { createEnrolled, login, PASSWORD } from '../operators/support.js';

let server: DevServer | undefined;
const api = apiCaller(() => ({ address: (server as DevServer).address, root: (server as DevServer).rootToken }));

describe('red team: a password change ends the sessions of the old password', { timeout: 120_000 }, () => {
  before(async () => {
    server = await startDev();
    await api.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys', capabilities: ['list'] }, { path: 'sys/tokens', capabilities: ['create'] }] });
    await api.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['erin'], external_groups: [] });
  });
  after(async () => {
    await server?.stop();
  });

  it('revokes the account\'s live tokens, their children and its console sessions', async () => {
    const e = await createEnrolled(api, 'erin');
    const [c1, c2, c3] = e.recoveryCodes as [string, string, string];
    // The "stolen" login token, a child of it, and a console session.
    const stolen = await login(api, { username: 'erin', password: PASSWORD, recovery_code: c1 });
    assertOk(stolen, 200, 'login');
    const child = await api.call(stolen.body.token, 'POST', '/v1/tokens', { policies: ['keys-read'] });
    assertOk(child, 200, 'child token');
    const session = await login(api, { username: 'erin', password: PASSWORD, recovery_code: c2, session: true });
    assertOk(session, 200, 'session login');
    const cookie = (session.headers['set-cookie'] ?? []).map((l) => l.split(';')[0]).join('; ');
    const address = (server as DevServer).address;
    assertOk(await request(address, { method: 'GET', path: '/v1/auth/session', headers: { cookie } }), 200, 'session before');

    const changed = await api.call(undefined, 'POST', '/v1/auth/operator/password', { username: 'erin', password: PASSWORD, recovery_code: c3, new_password: 'a brand new passphrase 42' });
    assert.equal(changed.status, 204, changed.text);

    for (const [what, token] of [['login token', stolen.body.token], ['its child', child.body.token]] as const) {
      assertError(await api.call(token, 'GET', '/v1/keys'), 401, 'ERR_UNAUTHENTICATED', `${what} after the password change`);
    }
    assertError(await request(address, { method: 'GET', path: '/v1/auth/session', headers: { cookie } }), 401, 'ERR_UNAUTHENTICATED', 'console session after the password change');
    // The new password logs in; the old one does not.
    assertError(await login(api, { username: 'erin', password: PASSWORD, recovery_code: e.recoveryCodes[3] }), 401, 'ERR_LOGIN_FAILED');
    assertOk(await login(api, { username: 'erin', password: 'a brand new passphrase 42', recovery_code: e.recoveryCodes[4] }), 200, 'new password');
  });
});
