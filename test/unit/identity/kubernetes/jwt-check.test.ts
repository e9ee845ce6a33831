/** Login step `jwt`, offline: real keys and real signed tokens, every refusal ERR_PERMISSION_DENIED at step `jwt`. */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { checkJwt, type JwtExpectations } from '../../../../src/identity/kubernetes/jwt-check.js';
import { VerificationKeys } from '../../../../src/identity/kubernetes/verification-keys.js';
import { refusedBy } from './support.js';

const ISSUER = 'https://kubernetes.default.svc';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();
// An EC key first: an RSA token must be tried against the next key, not refused at the first.
const keys = new VerificationKeys({ pems: [pem(ec.publicKey), pem(rsa.publicKey)] });
const expect: JwtExpectations = { issuer: ISSUER, audience: 'keyhold' };

const pod = { name: 'web', uid: 'pod-uid-1' };
const claims = (extra: Record<string, unknown> = {}, k8s: Record<string, unknown> = { namespace: 'app', serviceaccount: { name: 'app', uid: 'sa-uid-1' }, pod }) =>
  ({ iss: ISSUER, aud: ['keyhold'], sub: 'system:serviceaccount:app:app', 'kubernetes.io': k8s, ...extra });

async function sign(payload: Record<string, unknown>, options: { alg?: string; key?: KeyObject | Uint8Array; iat?: number; exp?: number; nbf?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: options.alg ?? 'RS256' }).setIssuedAt(options.iat ?? now).setExpirationTime(options.exp ?? now + 600);
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(options.key ?? rsa.privateKey);
}

describe('login step jwt', () => {
  it('returns the service-account claims of a good pod-bound token, signed with RSA or EC', async () => {
    const want = { namespace: 'app', serviceAccount: { name: 'app', uid: 'sa-uid-1' }, pod };
    assert.deepEqual(await checkJwt(await sign(claims()), expect, keys), want);
    assert.deepEqual(await checkJwt(await sign(claims(), { alg: 'ES256', key: ec.privateKey }), expect, keys), want);
    assert.deepEqual(await checkJwt(await sign(claims(), { alg: 'PS384' }), expect, keys), want);
  });

  it('a token not bound to a pod has no pod', async () => {
    const token = await sign(claims({}, { namespace: 'app', serviceaccount: { name: 'app', uid: 'sa-uid-1' } }));
    assert.deepEqual(await checkJwt(token, expect, keys), { namespace: 'app', serviceAccount: { name: 'app', uid: 'sa-uid-1' } });
  });

  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string>, RegExp, JwtExpectations?]> = [
    ['too large', async () => 'x'.repeat(16 * 1024 + 1), /too large/],
    ['not a JWT', async () => 'not.a.jwt', /malformed/],
    ['expired', () => sign(claims(), { iat: now - 7200, exp: now - 3600 }), /token expired/],
    ['not yet valid', () => sign(claims(), { nbf: now + 3600 }), /not yet valid/],
    ['older than the role allows', () => sign(claims(), { iat: now - 600 }), /older than the role allows/, { ...expect, maxTokenAgeSeconds: 60 }],
    ['wrong audience', () => sign(claims({ aud: ['vault'] })), /wrong audience/],
    ['wrong issuer', () => sign(claims({ iss: 'https://other.example' })), /wrong issuer/],
    ['signed by an unrelated key', () => sign(claims(), { key: otherRsa.privateKey }), /signature invalid/],
    ['HS256', () => sign(claims(), { alg: 'HS256', key: randomBytes(32) }), /algorithm not allowed/],
    ['no Kubernetes claims', () => sign({ iss: ISSUER, aud: ['keyhold'], sub: 'someone' }), /not a service-account token/],
    ['a subject naming another service account', () => sign(claims({ sub: 'system:serviceaccount:app:other' })), /subject does not match/],
    ['a pod claim without a uid', () => sign(claims({}, { namespace: 'app', serviceaccount: { name: 'app', uid: 'sa-uid-1' }, pod: { name: 'web' } })), /pod claim lacks/],
  ];
  for (const [name, token, reason, expected] of cases) {
    it(`refuses: ${name}`, async () => assert.rejects(checkJwt(await token(), expected ?? expect, keys), refusedBy('jwt', reason)));
  }
});
