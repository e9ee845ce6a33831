/**
 * Red team, console sessions: a CSRF token must be bound to the session it was issued for. The
 * CSRF secret used to live in its own cookie, independent of the session cookie: anyone who can
 * set a cookie for the console's site (a sibling subdomain is same-site, so SameSite=Strict does
 * not stop it; `keyhold_csrf` has no __Host- prefix) could plant the secret of their own session
 * beside the victim's session cookie and send the matching token they know: a cross-origin,
 * same-site forged request then passed the CSRF check. Real `keyhold dev` server, plain HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk, request, type RawResponse } from '../api/api-helpers.js';

let server: DevServer | undefined;
const api = apiCaller(() => ({ address: (server as DevServer).address, root: (server as DevServer).rootToken }));

/** name=value of every cookie a response sets (the browser's jar for this test). */
function setCookies(res: RawResponse): Record<string, string> {
  const jar: Record<string, string> = {};
  for (const line of res.headers['set-cookie'] ?? []) {
    const [pair] = line.split(';');
    const eq = (pair as string).indexOf('=');
    jar[(pair as string).slice(0, eq)] = (pair as string).slice(eq + 1);
  }
  return jar;
}
const header = (jar: Record<string, string>) => Object.entries(jar).map(([k, v]) => `${k}=${v}`).join('; ');

async function tokenSession(): Promise<{ jar: Record<string, string>; csrf: string }> {
  const res = await request((server as DevServer).address, { method: 'POST', path: '/v1/auth/token/session', token: (server as DevServer).rootToken });
  assertOk(res, 200, 'token session');
  const jar = setCookies(res);
  assert.ok(jar.keyhold_session, 'a session cookie');
  return { jar, csrf: res.body.csrf_token as string };
}

describe('red team: CSRF tokens are bound to their session', { timeout: 120_000 }, () => {
  before(async () => {
    server = await startDev();
    await api.asRoot('POST', '/v1/keys', { name: 'target', type: 'aes256-gcm', protection: 'wrapped' });
  });
  after(async () => {
    await server?.stop();
  });

  it('a token (with its planted secret cookie) from another session does not authorise the victim\'s session', async () => {
    const victim = await tokenSession();
    const attacker = await tokenSession();
    const address = (server as DevServer).address;
    // The attacker's own CSRF token, sent with every cookie the attacker could plant beside the victim's session cookie.
    const planted = { ...attacker.jar, keyhold_session: victim.jar.keyhold_session as string };
    const forged = await request(address, { method: 'POST', path: '/v1/keys/target/rotate', headers: { cookie: header(planted), 'x-csrf-token': attacker.csrf } });
    assertError(forged, 403, 'ERR_CSRF', 'planted CSRF secret');
    // Without a planted secret, the other session's token is refused too.
    const crossed = await request(address, { method: 'POST', path: '/v1/keys/target/rotate', headers: { cookie: `keyhold_session=${victim.jar.keyhold_session}`, 'x-csrf-token': attacker.csrf } });
    assertError(crossed, 403, 'ERR_CSRF', 'session cookie alone, other session\'s token');
    assert.equal((await api.asRoot('GET', '/v1/keys/target')).latest_version, 1, 'a forged rotation rotated');
    // The victim's own token still works, with or without whatever CSRF cookie is in the jar.
    for (const cookie of [header(victim.jar), header(planted), `keyhold_session=${victim.jar.keyhold_session}`]) {
      const ok = await request(address, { method: 'POST', path: '/v1/keys/target/rotate', headers: { cookie, 'x-csrf-token': victim.csrf } });
      assertOk(ok, 200, `victim's own token with ${cookie.split('; ').map((c) => c.split('=')[0]).join(',')}`);
    }
    // A fresh CSRF token from GET /v1/auth/session after a reload is the session's, and works.
    const me = await request(address, { method: 'GET', path: '/v1/auth/session', headers: { cookie: header(planted) } });
    assertOk(me, 200, 'whoami');
    const again = await request(address, { method: 'POST', path: '/v1/keys/target/rotate', headers: { cookie: `keyhold_session=${victim.jar.keyhold_session}`, 'x-csrf-token': me.body.csrf_token } });
    assertOk(again, 200, 'fresh token from the session route');
  });
});
