/**
 * SSO configuration and the login routes' input: only root changes who may log in; the provider
 * is checked (issuer, https) before anything is stored; the secret is never answered or logged;
 * every malformed request is a 4xx with a code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../api/api-helpers.js';
import { call } from '../../helpers/server.js';
import { assertNotLogged, assertRefused, CALLBACK, startSso, type SsoSetup } from './support.js';

describe('SSO configuration', () => {
  let sso: SsoSetup;
  before(async () => {
    sso = await startSso({ alice: { groups: ['kh-ops'] } });
  });
  after(async () => sso.stop());
  const root = () => sso.kh.rootToken;
  const notConfigured = async () => assertRefused(await call(sso.kh.address, 'GET', '/v1/auth/oidc/config', root()), 400, 'ERR_OIDC_NOT_CONFIGURED');

  it('answers ERR_OIDC_NOT_CONFIGURED before it is configured', async () => {
    await notConfigured();
    assertRefused(await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri }), 400, 'ERR_OIDC_NOT_CONFIGURED');
  });

  it('refuses a provider whose discovery document names another issuer, and stores nothing', async () => {
    // The same provider, reached by another name: its document says http://127.0.0.1:…, not localhost.
    const r = await sso.configure({ issuer: sso.idp.issuer.replace('127.0.0.1', 'localhost') });
    assertRefused(r, 400, 'ERR_OIDC_DISCOVERY_INVALID', /names issuer/);
    await notConfigured();
  });

  it('refuses an issuer that is not https (off loopback), not a URL, or that no one answers at', async () => {
    assertRefused(await sso.configure({ issuer: 'http://idp.example' }), 400, 'ERR_OIDC_CONFIG_INVALID', /https/);
    assertRefused(await sso.configure({ issuer: 'not a url' }), 400, 'ERR_OIDC_CONFIG_INVALID');
    assertRefused(await sso.configure({ issuer: `${sso.idp.issuer}?tenant=x` }), 400, 'ERR_OIDC_CONFIG_INVALID', /query/);
    assertRefused(await sso.configure({ redirect_uris: ['http://kh.example/v1/auth/oidc/callback'] }), 400, 'ERR_OIDC_CONFIG_INVALID', /https/);
    assertRefused(await sso.configure({ scopes: ['profile'] }), 400, 'ERR_OIDC_CONFIG_INVALID', /openid/);
    sso.idp.setReachable('refuse');
    try {
      assertRefused(await sso.configure(), 503, 'ERR_OIDC_PROVIDER_UNREACHABLE', /discovery/);
    } finally {
      sso.idp.setReachable('up');
    }
    await notConfigured();
  });

  it('lets only a holder of root change it, whatever its policies grant on the config path', async () => {
    await call(sso.kh.address, 'PUT', '/v1/policies/oidc-admin', root(), { rules: [{ path: 'sys/auth/oidc/*', capabilities: ['create', 'read', 'update', 'delete', 'list'] }] });
    const admin = await call(sso.kh.address, 'POST', '/v1/tokens', root(), { policies: ['oidc-admin'], ttl: 600 });
    assertRefused(await sso.configure({}, admin.body.token), 403, 'ERR_PERMISSION_DENIED', /root/);
    const nobody = await call(sso.kh.address, 'POST', '/v1/tokens', root(), { policies: ['default-none'], ttl: 600 });
    assertRefused(await sso.configure({}, nobody.body.token), 403, 'ERR_PERMISSION_DENIED');
    assertRefused(await sso.configure({}, 'khs.not-a-token'), 401, 'ERR_UNAUTHENTICATED');
    await notConfigured();
  });

  it('stores a good configuration; GET shows it without the secret', async () => {
    assert.equal((await sso.configure()).status, 204);
    const r = await call(sso.kh.address, 'GET', '/v1/auth/oidc/config', root());
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      issuer: sso.idp.issuer, client_id: 'keyhold', client_secret_set: true, redirect_uris: [sso.redirectUri], groups_claim: 'groups', scopes: ['openid', 'profile', 'email', 'groups'],
    });
    assert.equal(r.text.includes(sso.idp.client.client_secret), false);
  });

  it('keeps the stored secret when a write leaves it out for the same client, and requires it for another', async () => {
    const { client_secret: _, ...withoutSecret } = { issuer: sso.idp.issuer, client_id: 'keyhold', client_secret: '', redirect_uris: [sso.redirectUri], scopes: ['openid', 'groups'] };
    assert.equal((await call(sso.kh.address, 'PUT', '/v1/auth/oidc/config', root(), withoutSecret)).status, 204);
    // Still the right secret: the provider accepts keyhold at its token endpoint (a 403 for the unmapped group, not a 502).
    const l = await sso.beginLogin('alice');
    assertRefused(await sso.callback({ code: l.code, state: l.state }), 403, 'ERR_OIDC_GROUPS_UNMAPPED');
    assertRefused(await call(sso.kh.address, 'PUT', '/v1/auth/oidc/config', root(), { ...withoutSecret, client_id: 'another-app' }), 400, 'ERR_OIDC_CONFIG_INVALID', /client_secret is required/);
  });

  it('says so when the provider refuses keyhold\'s client secret (502, never 500)', async () => {
    assert.equal((await sso.configure({ client_secret: 'wrong-secret' })).status, 204);
    try {
      const l = await sso.beginLogin('alice');
      assertRefused(await sso.callback({ code: l.code, state: l.state }), 502, 'ERR_OIDC_PROVIDER_ERROR', /client credentials/);
    } finally {
      assert.equal((await sso.configure()).status, 204);
    }
  });

  it('refuses a redirect URI that is not configured', async () => {
    for (const uri of [`${sso.kh.address}/v1/auth/oidc/callback/`, `${sso.kh.address}/v1/auth/oidc/callback?x=1`, 'https://evil.example/cb', `${sso.kh.address.replace('127.0.0.1', 'localhost')}${CALLBACK}`]) {
      assertRefused(await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: uri }), 400, 'ERR_OIDC_REDIRECT_URI_INVALID');
    }
  });

  it('asks the provider for the code flow with PKCE S256, a fresh state and nonce each time', async () => {
    const begin = async () => {
      const r = await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri });
      return new URL(r.body.auth_url as string);
    };
    const urls = [await begin(), await begin()];
    for (const url of urls) {
      assert.equal(url.origin + url.pathname, `${sso.idp.issuer}/auth`);
      const q = url.searchParams;
      assert.equal(q.get('response_type'), 'code');
      assert.equal(q.get('client_id'), 'keyhold');
      assert.equal(q.get('code_challenge_method'), 'S256');
      assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
      assert.equal(q.get('redirect_uri'), sso.redirectUri);
    }
    const [a, b] = urls as [URL, URL];
    for (const p of ['state', 'nonce', 'code_challenge']) assert.notEqual(a.searchParams.get(p), b.searchParams.get(p));
  });

  it('is turned off by DELETE (a holder of delete on the path is enough: it confers nothing); a login under way then fails', async () => {
    await call(sso.kh.address, 'PUT', '/v1/policies/oidc-off', root(), { rules: [{ path: 'sys/auth/oidc/config', capabilities: ['delete'] }] });
    const switchOff = (await call(sso.kh.address, 'POST', '/v1/tokens', root(), { policies: ['oidc-off'], ttl: 600 })).body.token as string;
    const underWay = await sso.beginLogin('alice');
    assertRefused(await sso.configure({}, switchOff), 403, 'ERR_PERMISSION_DENIED');
    assert.equal((await call(sso.kh.address, 'DELETE', '/v1/auth/oidc/config', switchOff)).status, 204);
    await notConfigured();
    assertRefused(await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri }), 400, 'ERR_OIDC_NOT_CONFIGURED');
    assertRefused(await sso.callback({ code: underWay.code, state: underWay.state }), 400, 'ERR_OIDC_NOT_CONFIGURED');
    assertRefused(await call(sso.kh.address, 'DELETE', '/v1/auth/oidc/config', switchOff), 400, 'ERR_OIDC_NOT_CONFIGURED');
    assert.equal((await sso.configure()).status, 204);
  });

  it('never put the client secret in the audit log or the server output', () => {
    assertNotLogged(sso.kh, [sso.idp.client.client_secret]);
  });

  describe('malformed requests: a 4xx with a code on every route, never a 5xx', () => {
    const cases: Array<[string, string, string, unknown, string?]> = [];
    const config = () => ({ issuer: sso.idp.issuer, client_id: 'keyhold', client_secret: 's', redirect_uris: [sso.redirectUri] });
    const goodState = () => `${Date.now() + 60_000}.${'A'.repeat(43)}`;
    const bodies: Record<string, () => unknown[]> = {
      'PUT /v1/auth/oidc/config': () => [
        null, [], 'x', 42, {}, { ...config(), extra: 1 }, { ...config(), issuer: 7 }, { ...config(), issuer: 'x'.repeat(3000) }, { ...config(), redirect_uris: [] },
        { ...config(), redirect_uris: 'https://a' }, { ...config(), redirect_uris: Array(17).fill(0).map((_, i) => `https://a/${i}`) }, { ...config(), redirect_uris: ['https://a', 'https://a'] },
        { ...config(), client_id: '' }, { ...config(), client_id: 'a b' }, { ...config(), client_secret: '' }, { ...config(), client_secret: 'é' }, { ...config(), groups_claim: '' },
        { ...config(), groups_claim: 'a b' }, { ...config(), scopes: [] }, { ...config(), scopes: ['a b'] }, { ...config(), scopes: ['openid', 'openid'] }, { ...config(), max_age_seconds: -1 },
        { ...config(), max_age_seconds: 1.5 }, { ...config(), max_age_seconds: '60' }, { ...config(), issuer: 'https://user:pw@idp.example' }, { ...config(), issuer: 'https://idp.example/#x' },
      ],
      'POST /v1/auth/oidc/auth-url': () => [null, [], {}, { redirect_uri: 7 }, { redirect_uri: '' }, { redirect_uri: 'x'.repeat(3000) }, { redirect_uri: sso.redirectUri, extra: true }],
      [`POST ${CALLBACK}`]: () => [
        null, [], {}, { code: 'c' }, { state: goodState() }, { code: '', state: goodState() }, { code: 'c', state: 'short' }, { code: 'c', state: `${goodState()}x` },
        { code: 'c', state: goodState(), extra: 1 }, { code: 'c\n', state: goodState() }, { code: 'x'.repeat(3000), state: goodState() }, { code: 'c', state: goodState(), session: 'yes' },
        { code: 7, state: goodState() }, { code: 'c', state: goodState(), iss: '' },
      ],
    };
    before(() => {
      for (const [route, list] of Object.entries(bodies)) {
        const [method, path] = route.split(' ') as [string, string];
        for (const body of list()) cases.push([route, method, path, body]);
      }
    });

    it('answers every malformed JSON body with a 4xx and a code', async () => {
      assert.ok(cases.length > 40);
      for (const [route, method, path, body] of cases) {
        const r = await request(sso.kh.address, { method, path, token: method === 'PUT' ? root() : undefined, json: body });
        assert.ok(r.status >= 400 && r.status < 500, `${route} ${JSON.stringify(body).slice(0, 80)}: ${r.status} ${r.text}`);
        assert.match(r.body?.error?.code ?? '', /^ERR_/, `${route} ${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      }
    });

    it('answers bodies that are not JSON with a 4xx and a code', async () => {
      for (const path of ['/v1/auth/oidc/config', '/v1/auth/oidc/auth-url', CALLBACK]) {
        const method = path.endsWith('config') ? 'PUT' : 'POST';
        for (const [raw, contentType] of [['{', 'application/json'], ['code=a&state=b', 'application/x-www-form-urlencoded'], ['', 'application/json'], ['{"a":1}', 'text/plain']] as const) {
          const r = await request(sso.kh.address, { method, path, token: method === 'PUT' ? root() : undefined, raw, contentType });
          assert.ok(r.status >= 400 && r.status < 500, `${method} ${path} ${contentType} ${raw}: ${r.status} ${r.text}`);
          assert.match(r.body?.error?.code ?? '', /^ERR_/);
        }
      }
    });

    it('answers a malformed browser callback with a 4xx and a code, or a redirect to the login page with one', async () => {
      for (const query of ['', '?code=a', '?state=b', '?code=a&state=b', '?code=a&state=b&unknown=1', `?code=${'x'.repeat(3000)}&state=b`, '?code=a&code=b&state=c', '?error=x', `?code=a&state=${goodState()}`, '?code=%ff&state=b']) {
        const r = await request(sso.kh.address, { method: 'GET', path: CALLBACK + query });
        if (r.status === 303) assert.match(String(r.headers.location), /^\/ui\/#\/login\?error=ERR_[A-Z_]+$/, query);
        else {
          assert.ok(r.status >= 400 && r.status < 500, `${query}: ${r.status} ${r.text}`);
          assert.match(r.body?.error?.code ?? '', /^ERR_/, query);
        }
      }
    });
  });
});

describe('SSO: each login begun counts toward the address\'s unauthenticated budget (it stores a flow for anyone)', () => {
  it('refuses the sixth auth-url of a window of 5 with 429, though the first five succeeded', async () => {
    const sso = await startSso({}, {}, { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: '5/60' });
    try {
      assert.equal((await sso.configure()).status, 204);
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri })).status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    } finally {
      await sso.stop();
    }
  });
});
