/** The checks of a provider's discovery document (OIDC Discovery §4.3), before anything in it is used. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkMetadata, discoveryUrl } from '../../../../src/identity/oidc/discovery.js';
import { checkedUrl } from '../../../../src/identity/oidc/urls.js';
import { keyholdCode } from '../../../helpers/errors.js';

const issuer = 'https://idp.example/realms/bank';
const doc = {
  issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/certs`,
  response_types_supported: ['code', 'id_token'], code_challenge_methods_supported: ['plain', 'S256'],
  token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt'], id_token_signing_alg_values_supported: ['RS256', 'HS256'],
};
const refused = (d: Record<string, unknown>, why: RegExp) => assert.throws(() => checkMetadata(issuer, d, 'ERR_OIDC_DISCOVERY_INVALID'), keyholdCode('ERR_OIDC_DISCOVERY_INVALID', why));

describe('discovery document checks', () => {
  it('keeps the endpoints and the accepted algorithms of a good document', () => {
    assert.deepEqual(checkMetadata(issuer, doc, 'ERR_OIDC_DISCOVERY_INVALID'), {
      issuer, authorizationEndpoint: `${issuer}/auth`, tokenEndpoint: `${issuer}/token`, jwksUri: `${issuer}/certs`, idTokenAlgorithms: ['RS256'],
    });
  });
  it('is read at <issuer>/.well-known/openid-configuration', () => {
    assert.equal(discoveryUrl(issuer), `${issuer}/.well-known/openid-configuration`);
    assert.equal(discoveryUrl(`${issuer}/`), `${issuer}/.well-known/openid-configuration`);
  });
  it('refuses another issuer', () => refused({ ...doc, issuer: 'https://evil.example/realms/bank' }, /names issuer/));
  it('refuses an issuer differing only by a trailing slash', () => refused({ ...doc, issuer: `${issuer}/` }, /names issuer/));
  it('refuses a document without an issuer', () => refused({ ...doc, issuer: undefined }, /names issuer null/));
  for (const field of ['authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
    it(`refuses a document without ${field}`, () => refused({ ...doc, [field]: undefined }, new RegExp(`has no ${field}`)));
    it(`refuses a plain-http ${field} off loopback`, () => refused({ ...doc, [field]: 'http://idp.example/x' }, /https/));
  }
  it('refuses a provider without the code flow', () => refused({ ...doc, response_types_supported: ['id_token'] }, /code/));
  it('refuses a provider that lists PKCE methods without S256', () => refused({ ...doc, code_challenge_methods_supported: ['plain'] }, /S256/));
  it('accepts a provider that does not list PKCE methods (Entra ID)', () => assert.ok(checkMetadata(issuer, { ...doc, code_challenge_methods_supported: undefined }, 'ERR_OIDC_DISCOVERY_INVALID')));
  it('refuses a provider without client_secret_basic', () => refused({ ...doc, token_endpoint_auth_methods_supported: ['private_key_jwt'] }, /client_secret_basic/));
  it('refuses a provider that signs ID tokens only with HS256 or none', () => refused({ ...doc, id_token_signing_alg_values_supported: ['HS256', 'none'] }, /algorithm/));
  it('gives the code it is asked for (a login sees a changed provider as the provider\'s fault)', () => {
    assert.throws(() => checkMetadata(issuer, { ...doc, issuer: 'x' }, 'ERR_OIDC_PROVIDER_ERROR'), keyholdCode('ERR_OIDC_PROVIDER_ERROR'));
  });
});

describe('provider and redirect URLs', () => {
  const ok = (u: string) => assert.equal(checkedUrl(u, 'issuer', 'ERR_OIDC_CONFIG_INVALID').href, new URL(u).href);
  const bad = (u: string, why: RegExp) => assert.throws(() => checkedUrl(u, 'issuer', 'ERR_OIDC_CONFIG_INVALID'), keyholdCode('ERR_OIDC_CONFIG_INVALID', why));
  it('accepts https', () => ok('https://login.microsoftonline.com/tenant/v2.0'));
  it('accepts http on loopback only', () => {
    ok('http://127.0.0.1:8080/realms/x');
    ok('http://localhost:8080');
    ok('http://[::1]:8080');
    bad('http://idp.example', /https/);
    bad('http://10.0.0.1', /https/);
    bad('http://127.0.0.1.evil.example', /https/);
  });
  it('refuses other schemes, credentials, fragments and relative URLs', () => {
    bad('ftp://idp.example', /https/);
    bad('javascript:alert(1)', /https/);
    bad('https://user:pw@idp.example', /credentials/);
    bad('https://idp.example/#frag', /fragment/);
    bad('/relative', /absolute/);
  });
});
