/**
 * SSO against a real oidc-provider: ID tokens that must be refused, each one a real provider's
 * answer put where an attacker in front of the token endpoint (the front door of the test helper)
 * would put it: issued to another client, for another login, with a broken signature, forged with
 * `none` or HS256, expired; and a provider that cannot be reached.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, UnsecuredJWT } from 'jose';
import { startOidcProvider } from '../../helpers/oidc-provider.js';
import { call } from '../../helpers/server.js';
import { assertNotLogged, assertRefused, ssoAudit, startSso, tamperSignature, type SsoSetup } from './support.js';

describe('SSO: ID tokens keyhold refuses', () => {
  let sso: SsoSetup;
  const secrets: string[] = [];
  before(async () => {
    sso = await startSso({ alice: { groups: ['kh-ops'] } });
    const r = await sso.configure();
    assert.equal(r.status, 204, JSON.stringify(r.body));
  });
  after(async () => {
    sso.idp.onTokenResponse(undefined);
    await sso.stop();
  });

  /** A login whose token response carries `idToken(original, nonce)` instead of the provider's ID token. */
  async function loginWith(idToken: (original: string, nonce: string) => string | Promise<string>) {
    const login = await sso.beginLogin('alice');
    secrets.push(login.code, login.state, login.nonce);
    sso.idp.onTokenResponse(async (body) => {
      secrets.push(body.id_token as string, body.access_token as string);
      return { ...body, id_token: await idToken(body.id_token as string, login.nonce) };
    });
    try {
      return await sso.callback({ code: login.code, state: login.state });
    } finally {
      sso.idp.onTokenResponse(undefined);
    }
  }

  it('refuses an ID token the same provider issued to another client (wrong aud), even with this login\'s nonce', async () => {
    const before = ssoAudit(sso.kh).length;
    const r = await loginWith(async (_original, nonce) => (await sso.idp.codeFlow({ client: sso.idp.otherClient, account: 'alice', nonce })).id_token as string);
    assertRefused(r, 401, 'ERR_OIDC_TOKEN_INVALID', /wrong audience/);
    const outcome = ssoAudit(sso.kh, before).find((e) => e.type === 'response' && e.operation === 'auth.oidc.login');
    assert.equal(outcome?.outcome?.code, 'ERR_OIDC_TOKEN_INVALID');
    assert.match(outcome?.fields?.reason ?? '', /wrong audience/);
    assert.equal(r.body.token, undefined);
  });

  it('refuses an ID token issued to keyhold for another login (nonce mismatch)', async () => {
    const r = await loginWith(async () => (await sso.idp.codeFlow({ client: sso.idp.client, account: 'alice', nonce: 'a-nonce-of-another-login-0123456789' })).id_token as string);
    assertRefused(r, 401, 'ERR_OIDC_TOKEN_INVALID', /nonce mismatch/);
  });

  it('refuses an ID token whose signature was tampered with', async () => {
    assertRefused(await loginWith((original) => tamperSignature(original)), 401, 'ERR_OIDC_TOKEN_INVALID', /bad signature/);
  });

  it('refuses an ID token whose claims were changed after signing (groups added)', async () => {
    const r = await loginWith((original) => {
      const [h, p, s] = original.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      return `${h}.${Buffer.from(JSON.stringify({ ...claims, groups: ['kh-admins'] })).toString('base64url')}.${s}`;
    });
    assertRefused(r, 401, 'ERR_OIDC_TOKEN_INVALID', /bad signature/);
  });

  it('refuses a forged unsigned ID token (alg none) with the right claims', async () => {
    const r = await loginWith((original, nonce) => {
      const claims = JSON.parse(Buffer.from(original.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
      return new UnsecuredJWT({ ...claims, nonce }).encode();
    });
    assertRefused(r, 401, 'ERR_OIDC_TOKEN_INVALID');
  });

  it('refuses an ID token forged with HS256 and the client secret as its key', async () => {
    const r = await loginWith(async (original) => {
      const claims = JSON.parse(Buffer.from(original.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'test-rs256' }).sign(Buffer.from(sso.idp.client.client_secret));
    });
    assertRefused(r, 401, 'ERR_OIDC_TOKEN_INVALID', /algorithm/);
  });

  it('answers a token response without an ID token with a code', async () => {
    const login = await sso.beginLogin('alice');
    sso.idp.onTokenResponse((body) => ({ ...body, id_token: undefined }));
    try {
      assertRefused(await sso.callback({ code: login.code, state: login.state }), 401, 'ERR_OIDC_TOKEN_INVALID', /no id_token/);
    } finally {
      sso.idp.onTokenResponse(undefined);
    }
  });

  it('answers 503 ERR_OIDC_PROVIDER_UNREACHABLE, not 500, when the token endpoint cannot be reached', async () => {
    const login = await sso.beginLogin('alice');
    sso.idp.setReachable('refuse');
    try {
      assertRefused(await sso.callback({ code: login.code, state: login.state }), 503, 'ERR_OIDC_PROVIDER_UNREACHABLE', /token endpoint/);
    } finally {
      sso.idp.setReachable('up');
    }
  });

  it('answers 503 ERR_OIDC_PROVIDER_UNREACHABLE when the provider accepts connections but never answers', async () => {
    const login = await sso.beginLogin('alice');
    sso.idp.setReachable('hang');
    try {
      assertRefused(await sso.callback({ code: login.code, state: login.state }), 503, 'ERR_OIDC_PROVIDER_UNREACHABLE', /did not answer within/);
    } finally {
      sso.idp.setReachable('up');
    }
  });

  it('refuses an ID token that had expired when it arrived (a provider whose clock is 2 min behind, 60 s ID tokens)', async () => {
    const late = await startOidcProvider({ redirectUris: [sso.redirectUri], accounts: { alice: { groups: ['kh-ops'] } }, idTokenTtlSeconds: 60, clockOffsetSeconds: -120 });
    try {
      const r = await call(sso.kh.address, 'PUT', '/v1/auth/oidc/config', sso.kh.rootToken, {
        issuer: late.issuer, client_id: late.client.client_id, client_secret: late.client.client_secret, redirect_uris: [sso.redirectUri], scopes: ['openid', 'groups'],
      });
      assert.equal(r.status, 204, r.text);
      const url = await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri });
      const answer = await late.login(url.body.auth_url as string, 'alice');
      assertRefused(await sso.callback({ code: answer.code, state: answer.state }), 401, 'ERR_OIDC_TOKEN_INVALID', /expired/);
    } finally {
      await late.stop();
      assert.equal((await sso.configure()).status, 204);
    }
  });

  it('with max_age, refuses a person who authenticated at the provider longer ago than that (auth_time checked)', async () => {
    // The provider's clock is 2 min behind: by keyhold's clock its fresh session began 2 min ago.
    const slow = await startOidcProvider({ redirectUris: [sso.redirectUri], accounts: { alice: { groups: ['kh-ops'] } }, clockOffsetSeconds: -120 });
    try {
      const configure = (maxAge: number) => call(sso.kh.address, 'PUT', '/v1/auth/oidc/config', sso.kh.rootToken, {
        issuer: slow.issuer, client_id: slow.client.client_id, client_secret: slow.client.client_secret, redirect_uris: [sso.redirectUri], scopes: ['openid', 'groups'], max_age_seconds: maxAge,
      });
      const attempt = async () => {
        const url = await call(sso.kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: sso.redirectUri });
        assert.equal(new URL(url.body.auth_url as string).searchParams.get('max_age') !== null, true);
        const answer = await slow.login(url.body.auth_url as string, 'alice');
        return sso.callback({ code: answer.code, state: answer.state });
      };
      assert.equal((await configure(60)).status, 204);
      assertRefused(await attempt(), 401, 'ERR_OIDC_TOKEN_INVALID', /max_age/);
      // Within max_age and the tolerance, the same provider's tokens pass auth_time (and go on to the group check).
      assert.equal((await configure(600)).status, 204);
      assertRefused(await attempt(), 403, 'ERR_OIDC_GROUPS_UNMAPPED');
    } finally {
      await slow.stop();
      assert.equal((await sso.configure()).status, 204);
    }
  });

  it('never put a code, state, nonce or token in the audit log or the server output', () => {
    assert.ok(secrets.length > 10);
    assertNotLogged(sso.kh, secrets);
  });
});
