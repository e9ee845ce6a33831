/**
 * SSO end to end against a real oidc-provider and a real keyhold server: the groups claim mapped
 * through keyhold's groups, the token of the person `oidc:<sub>`, the console's session forms, and
 * the refusals of states and groups.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from '../../helpers/server.js';
import { assertNotLogged, assertRefused, CALLBACK, ssoAudit, startSso, type SsoSetup } from './support.js';

describe('SSO login', () => {
  let sso: SsoSetup;
  const secrets: string[] = [];
  const root = () => sso.kh.rootToken;
  const login = async (account: string) => {
    const l = await sso.beginLogin(account);
    secrets.push(l.code, l.state, l.nonce);
    return l;
  };
  const put = async (path: string, body: unknown) => {
    const r = await call(sso.kh.address, 'PUT', path, root(), body);
    assert.ok(r.status === 200 || r.status === 204, `${path}: ${r.text}`);
  };

  before(async () => {
    sso = await startSso({
      alice: { groups: ['kh-ops', 'unrelated-team'], email: 'alice@bank.example' },
      bob: { groups: ['unmapped-team'] },
      carol: {},
      dave: { groups: ['kh-root'] },
    });
    assert.equal((await sso.configure()).status, 204);
    await put('/v1/policies/ops-read', { rules: [{ path: 'secrets/ops/*', capabilities: ['read', 'list'] }] });
    await put('/v1/sys/groups/ops', { policies: ['ops-read'], members: [], external_groups: ['kh-ops'] });
    await put('/v1/sys/groups/roots', { policies: ['root'], members: [], external_groups: ['kh-root'] });
    await put('/v1/secrets/ops/db', { data: { password: 'p' } });
  });
  after(async () => sso.stop());

  it('gives a person whose group is mapped a short-lived token for oidc:<sub> with the group\'s policies', async () => {
    const before = ssoAudit(sso.kh).length;
    const l = await login('alice');
    const r = await sso.callback({ code: l.code, state: l.state, iss: l.iss });
    assert.equal(r.status, 200, r.text);
    secrets.push(r.body.token);
    assert.deepEqual(r.body.policies, ['ops-read']);
    assert.deepEqual(r.body.identity, {
      selectors: ['oidc:alice'], subject: 'alice', issuer: sso.idp.issuer, name: 'alice', groups: ['ops'], external_groups: ['kh-ops', 'unrelated-team'],
    });
    const ttl = Date.parse(r.body.expires_at) - Date.now();
    assert.ok(ttl > 3500_000 && ttl <= 3600_000, `expires in ${ttl} ms, not about 1 h`);
    // The token works, for what the group grants and nothing else.
    assert.equal((await call(sso.kh.address, 'GET', '/v1/secrets/ops/db', r.body.token)).status, 200);
    assert.equal((await call(sso.kh.address, 'GET', '/v1/keys', r.body.token)).status, 403);
    const looked = await call(sso.kh.address, 'GET', `/v1/tokens/accessors/${r.body.accessor}`, root());
    assert.deepEqual(looked.body.selectors, ['oidc:alice']);
    assert.equal(looked.body.orphan, true);
    // Audited with who and what, and none of the secrets.
    const records = ssoAudit(sso.kh, before);
    const outcome = records.find((e) => e.type === 'response' && e.operation === 'auth.oidc.login');
    assert.equal(outcome?.outcome?.status, 200);
    assert.equal(outcome?.fields?.oidc_subject, 'alice');
    assert.equal(outcome?.fields?.groups, 'ops');
    assert.equal(outcome?.fields?.issued_accessor, r.body.accessor);
    assert.ok(records.some((e) => e.type === 'request' && e.operation === 'auth.oidc.login'), 'a write-ahead request record');
    assert.equal(records.find((e) => e.type === 'request' && e.operation === 'auth.oidc.login')?.fields?.body, undefined, 'no HMAC of the body that carries the code');
  });

  it('refuses a replayed state, and the replay does not issue a token', async () => {
    const l = await login('alice');
    assert.equal((await sso.callback({ code: l.code, state: l.state })).status, 200);
    const again = await sso.callback({ code: l.code, state: l.state });
    assertRefused(again, 400, 'ERR_OIDC_STATE_INVALID', /already used/);
    assert.equal(again.body.token, undefined);
  });

  it('refuses two callbacks racing with one state: exactly one gets a token', async () => {
    const l = await login('alice');
    const answers = await Promise.all([1, 2, 3].map(() => sso.callback({ code: l.code, state: l.state })));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400, 400]);
  });

  it('refuses a code with the state of another login (the verifier and nonce are that login\'s)', async () => {
    const a = await login('alice');
    const b = await login('alice');
    assertRefused(await sso.callback({ code: a.code, state: b.state }), 400, 'ERR_OIDC_CODE_INVALID');
    // b's state was spent by that attempt; a's state is still good for a's code.
    assertRefused(await sso.callback({ code: b.code, state: b.state }), 400, 'ERR_OIDC_STATE_INVALID');
    assert.equal((await sso.callback({ code: a.code, state: a.state })).status, 200);
  });

  it('refuses a state keyhold never issued, and a response naming another issuer (iss)', async () => {
    const l = await login('alice');
    assertRefused(await sso.callback({ code: l.code, state: `${Date.now() + 60_000}.${'A'.repeat(43)}` }), 400, 'ERR_OIDC_STATE_INVALID', /unknown/);
    assertRefused(await sso.callback({ code: l.code, state: l.state, iss: 'https://evil.example' }), 400, 'ERR_OIDC_STATE_INVALID', /issuer/);
  });

  it('refuses a person none of whose groups is mapped (403, no token), and one with no groups claim', async () => {
    for (const account of ['bob', 'carol']) {
      const l = await login(account);
      const r = await sso.callback({ code: l.code, state: l.state });
      assertRefused(r, 403, 'ERR_OIDC_GROUPS_UNMAPPED');
      assert.equal(r.body.token, undefined);
    }
    const outcome = ssoAudit(sso.kh).reverse().find((e) => e.type === 'response' && e.operation === 'auth.oidc.login');
    assert.equal(outcome?.outcome?.code, 'ERR_OIDC_GROUPS_UNMAPPED');
    assert.equal(outcome?.fields?.oidc_subject, 'carol');
  });

  it('follows the provider\'s groups at each login: a person removed from the group there is refused at the next login', async () => {
    sso.idp.setAccounts({ alice: { groups: ['unrelated-team'] } });
    try {
      const l = await login('alice');
      assertRefused(await sso.callback({ code: l.code, state: l.state }), 403, 'ERR_OIDC_GROUPS_UNMAPPED');
    } finally {
      sso.idp.setAccounts({ alice: { groups: ['kh-ops', 'unrelated-team'] }, bob: { groups: ['unmapped-team'] }, carol: {}, dave: { groups: ['kh-root'] } });
    }
  });

  it('never gives root through SSO, even when a group maps to it', async () => {
    const l = await login('dave');
    assertRefused(await sso.callback({ code: l.code, state: l.state }), 403, 'ERR_PERMISSION_DENIED', /never given these policies: root/);
  });

  it('with session: true, sets the console\'s session cookie and answers the CSRF token instead of the token', async () => {
    const l = await login('alice');
    const response = await fetch(sso.kh.address + CALLBACK, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: l.code, state: l.state, session: true }) });
    const body = await response.json() as Record<string, unknown>;
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.token, undefined);
    assert.equal(typeof body.csrf_token, 'string');
    const session = response.headers.getSetCookie().find((c) => c.startsWith('keyhold_session='));
    assert.ok(session, 'a session cookie');
    assert.match(session, /HttpOnly/i);
    assert.match(session, /Secure/i);
    assert.match(session, /SameSite=Strict/i);
    secrets.push(session.split(';')[0]?.split('=')[1] as string);
  });

  describe('the browser form (GET, the redirect URI the console uses)', () => {
    /** auth-url as a browser calls it: the flow cookie comes with the URL. */
    async function begin(account: string) {
      const response = await fetch(sso.kh.address + '/v1/auth/oidc/auth-url', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uri: sso.redirectUri }) });
      const cookie = response.headers.getSetCookie().find((c) => c.startsWith('keyhold_oidc_flow='));
      assert.ok(cookie, 'the login cookie');
      assert.match(cookie, /HttpOnly/i);
      assert.match(cookie, /SameSite=Lax/i);
      assert.match(cookie, /Path=\/v1\/auth\/oidc\/callback/i);
      const { auth_url: authUrl } = await response.json() as { auth_url: string };
      const answer = await sso.idp.login(authUrl, account);
      secrets.push(answer.code, answer.state);
      return { answer, cookie: cookie.split(';')[0] as string };
    }
    const follow = (location: string, cookie?: string) => fetch(location, { redirect: 'manual', headers: cookie ? { cookie } : {} });

    it('logs in, sets the session cookie and redirects (303) to /ui/', async () => {
      const { answer, cookie } = await begin('alice');
      const response = await follow(answer.location, cookie);
      assert.equal(response.status, 303);
      assert.equal(response.headers.get('location'), '/ui/');
      assert.ok(response.headers.getSetCookie().some((c) => c.startsWith('keyhold_session=') && /HttpOnly/i.test(c)));
    });

    it('refuses a code and state planted in another browser (no login cookie, or that browser\'s own): login CSRF', async () => {
      const victim = await begin('bob');
      for (const cookie of [undefined, victim.cookie]) {
        // The attacker's own login, its redirect never followed by the attacker's browser.
        const attacker = await begin('alice');
        const response = await follow(attacker.answer.location, cookie);
        assert.equal(response.status, 303);
        assert.equal(response.headers.get('location'), '/ui/#/login?error=ERR_OIDC_STATE_INVALID');
        assert.equal(response.headers.getSetCookie().some((c) => c.startsWith('keyhold_session=')), false);
      }
    });

    it('does not log in on a HEAD (a link checker or prefetch must not spend the login)', async () => {
      const { answer, cookie } = await begin('alice');
      const head = await fetch(answer.location, { method: 'HEAD', redirect: 'manual', headers: { cookie } });
      assert.equal(head.status, 400);
      assert.equal(head.headers.getSetCookie().some((c) => c.startsWith('keyhold_session=')), false);
      const response = await follow(answer.location, cookie);
      assert.equal(response.headers.get('location'), '/ui/');
    });

    it('redirects to the console\'s login page with the code of any refusal (unmapped group, replayed state, provider error)', async () => {
      const bob = await begin('bob');
      assert.equal((await follow(bob.answer.location, bob.cookie)).headers.get('location'), '/ui/#/login?error=ERR_OIDC_GROUPS_UNMAPPED');
      assert.equal((await follow(bob.answer.location, bob.cookie)).headers.get('location'), '/ui/#/login?error=ERR_OIDC_STATE_INVALID');
      const denied = `${sso.redirectUri}?error=access_denied&error_description=no&state=${encodeURIComponent(bob.answer.state)}`;
      assert.equal((await follow(denied, bob.cookie)).headers.get('location'), '/ui/#/login?error=ERR_OIDC_LOGIN_DENIED');
      const outcome = ssoAudit(sso.kh).reverse().find((e) => e.type === 'response' && e.operation === 'auth.oidc.login-browser');
      assert.equal(outcome?.outcome?.code, 'ERR_OIDC_LOGIN_DENIED');
    });
  });

  it('never put a code, state, nonce, token or session in the audit log or the server output', () => {
    assert.ok(secrets.length > 20);
    assertNotLogged(sso.kh, secrets);
  });
});
