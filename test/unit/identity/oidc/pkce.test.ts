/** PKCE (RFC 7636) S256 and the random values of a login. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCodeVerifier, randomToken, s256Challenge } from '../../../../src/identity/oidc/pkce.js';

describe('PKCE S256', () => {
  it('computes the challenge of RFC 7636 Appendix B', () => {
    assert.equal(s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('makes verifiers of 43 unreserved characters, never twice the same', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const v = newCodeVerifier();
      assert.match(v, /^[A-Za-z0-9_-]{43}$/);
      seen.add(v);
    }
    assert.equal(seen.size, 200);
  });

  it('makes 256-bit random tokens for state and nonce', () => {
    assert.match(randomToken(), /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(randomToken(), randomToken());
  });
});
