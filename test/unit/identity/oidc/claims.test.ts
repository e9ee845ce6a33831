/** The ID token checks keyhold makes beside jose's (OIDC Core §3.1.3.7): nonce, azp, auth_time, sub, groups. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkClaims, MAX_GROUPS, type ClaimExpectations } from '../../../../src/identity/oidc/claims.js';
import { acceptedAlgorithms } from '../../../../src/identity/oidc/algorithms.js';
import { keyholdCode } from '../../../helpers/errors.js';

const now = 1_800_000_000;
const expect: ClaimExpectations = { issuer: 'https://idp.example', clientId: 'keyhold', nonce: 'n-1', groupsClaim: 'groups', clockToleranceSeconds: 30, now };
const good = { iss: 'https://idp.example', aud: 'keyhold', sub: 'user-1', nonce: 'n-1', iat: now - 5, exp: now + 300, groups: ['ops', 'audit'] };

function refused(claims: Record<string, unknown>, reason: RegExp, e: ClaimExpectations = expect): void {
  assert.throws(() => checkClaims(claims, e), keyholdCode('ERR_OIDC_TOKEN_INVALID', reason));
}

describe('ID token claims', () => {
  it('accepts a good token and names the person and their groups', () => {
    assert.deepEqual(checkClaims({ ...good, preferred_username: 'alice' }, expect), { subject: 'user-1', issuer: 'https://idp.example', groups: ['ops', 'audit'], name: 'alice' });
  });

  describe('nonce', () => {
    it('refuses another login\'s nonce', () => refused({ ...good, nonce: 'n-2' }, /nonce mismatch/));
    it('refuses a missing nonce', () => refused({ ...good, nonce: undefined }, /nonce mismatch/));
    it('refuses a nonce that is not a string', () => refused({ ...good, nonce: ['n-1'] }, /nonce mismatch/));
    it('refuses a prefix of the nonce', () => refused({ ...good, nonce: 'n-' }, /nonce mismatch/));
  });

  describe('several audiences', () => {
    it('refuses them without azp', () => refused({ ...good, aud: ['keyhold', 'other'] }, /several audiences and no azp/));
    it('refuses them when azp names another client', () => refused({ ...good, aud: ['keyhold', 'other'], azp: 'other' }, /azp is not this client/));
    it('accepts them when azp is keyhold', () => assert.equal(checkClaims({ ...good, aud: ['keyhold', 'other'], azp: 'keyhold' }, expect).subject, 'user-1'));
    it('refuses a single audience whose azp names another client', () => refused({ ...good, azp: 'other' }, /azp/));
  });

  describe('auth_time with max_age', () => {
    const withMaxAge = { ...expect, maxAgeSeconds: 300 };
    it('requires auth_time', () => refused(good, /no auth_time/, withMaxAge));
    it('refuses an authentication older than max_age (beyond the tolerance)', () => refused({ ...good, auth_time: now - 331 }, /max_age/, withMaxAge));
    it('accepts one within max_age and the tolerance', () => assert.equal(checkClaims({ ...good, auth_time: now - 329 }, withMaxAge).subject, 'user-1'));
    it('refuses an auth_time in the future', () => refused({ ...good, auth_time: now + 31 }, /future/, withMaxAge));
    it('does not look at auth_time without max_age', () => assert.equal(checkClaims({ ...good, auth_time: 'x' }, expect).subject, 'user-1'));
  });

  it('refuses an iat in the future beyond the tolerance', () => refused({ ...good, iat: now + 31 }, /iat is in the future/));

  describe('sub (it becomes the selector oidc:<sub>)', () => {
    for (const [what, sub] of [['missing', undefined], ['empty', ''], ['with a space', 'a b'], ['with a newline', 'a\nb'], ['a number', 42], ['longer than 255', 'x'.repeat(256)], ['non-ASCII', 'é']] as const) {
      it(`refuses a sub ${what}`, () => refused({ ...good, sub }, /sub is missing/));
    }
  });

  describe('the groups claim', () => {
    it('is empty when absent', () => assert.deepEqual(checkClaims({ ...good, groups: undefined }, expect).groups, []));
    it('takes a single string as one group', () => assert.deepEqual(checkClaims({ ...good, groups: 'ops' }, expect).groups, ['ops']));
    it('reads the configured claim name', () => assert.deepEqual(checkClaims({ ...good, roles: ['r1'] }, { ...expect, groupsClaim: 'roles' }).groups, ['r1']));
    it('drops duplicates', () => assert.deepEqual(checkClaims({ ...good, groups: ['a', 'a'] }, expect).groups, ['a']));
    for (const [what, groups] of [['an object', { a: 1 }], ['a list with a number', ['a', 1]], ['a list with null', [null]], ['a number', 7], ['an empty name', ['']], ['a name over 256 characters', ['g'.repeat(257)]], ['too many groups', Array.from({ length: MAX_GROUPS + 1 }, (_, i) => `g${i}`)]] as const) {
      it(`refuses ${what}`, () => refused({ ...good, groups }, /groups/));
    }
  });
});

describe('ID token algorithms', () => {
  it('keeps only asymmetric algorithms the provider advertises', () => {
    assert.deepEqual(acceptedAlgorithms(['none', 'HS256', 'HS512', 'RS256', 'ES256', 'PS384', 'EdDSA', 'constructor', 7]), ['RS256', 'ES256', 'PS384', 'EdDSA']);
  });
  it('assumes RS256 when the provider advertises none (the OIDC default)', () => assert.deepEqual(acceptedAlgorithms(undefined), ['RS256']));
  it('accepts nothing from a provider that only signs with HS256 or none', () => assert.deepEqual(acceptedAlgorithms(['HS256', 'none']), []));
});
