/**
 * Login step `jwt`: the service-account token itself, checked offline. Signature, issuer,
 * audience, expiry, not-before and the role's maximum age (jose, against the issuer's keys), then
 * the Kubernetes claims: a namespace, a service account with name and uid, a subject that names
 * them, and a pod with name and uid when there is one. Every refusal is ERR_PERMISSION_DENIED.
 */
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { KeyholdError } from '../../errors.js';
import { refused } from './refusal.js';
import type { VerificationKeys } from './verification-keys.js';

/** Algorithms kube-apiserver signs service-account tokens with; `none` and HMAC never. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
const MAX_JWT_BYTES = 16 * 1024;

/** Who the token says it is: only what a verified token claims. */
export interface ServiceAccountClaims {
  namespace: string;
  serviceAccount: { name: string; uid: string };
  /** The pod the token is bound to (a TokenRequest with boundObjectRef to a Pod). */
  pod?: { name: string; uid: string };
}

/** What the token must satisfy, from the configuration (issuer) and the role (audience, age). */
export interface JwtExpectations {
  issuer: string;
  audience: string;
  maxTokenAgeSeconds?: number;
}

interface KubernetesClaims {
  namespace?: unknown;
  serviceaccount?: { name?: unknown; uid?: unknown };
  pod?: { name?: unknown; uid?: unknown };
}

const denied = (reason: string) => refused('jwt', reason);

/** Verifies the token and returns its service-account claims. */
export async function checkJwt(jwt: string, expected: JwtExpectations, keys: VerificationKeys): Promise<ServiceAccountClaims> {
  if (jwt.length > MAX_JWT_BYTES) throw denied('token too large');
  return serviceAccountClaims(await verify(jwt, expected, keys));
}

async function verify(jwt: string, expected: JwtExpectations, keys: VerificationKeys): Promise<JWTPayload> {
  const options = {
    issuer: expected.issuer,
    audience: expected.audience,
    algorithms: ALGORITHMS,
    clockTolerance: 5,
    ...(expected.maxTokenAgeSeconds ? { maxTokenAge: expected.maxTokenAgeSeconds } : {}),
    requiredClaims: ['exp', 'sub'],
  };
  const attempt = async (refresh: boolean) => {
    const set = await keys.get(refresh);
    if (!Array.isArray(set)) return (await jwtVerify(jwt, set, options)).payload;
    let last: unknown;
    for (const key of set) {
      try {
        return (await jwtVerify(jwt, key, options)).payload;
      } catch (err) {
        last = err;
        // A key of another type (EC vs RSA) or a bad signature: try the next key.
        if (!(err instanceof joseErrors.JWSSignatureVerificationFailed) && !(err instanceof joseErrors.JOSENotSupported) && !(err instanceof TypeError)) throw err;
      }
    }
    throw last ?? denied('no verification key configured');
  };
  try {
    return await attempt(false);
  } catch (err) {
    // A key rotated on the cluster: read the JWKS again, once.
    if (err instanceof joseErrors.JWKSNoMatchingKey && keys.refreshable) {
      try { return await attempt(true); } catch (again) { throw verifyFailure(again); }
    }
    throw verifyFailure(err);
  }
}

/** jose's errors, said plainly (they become the audit reason too). */
function verifyFailure(err: unknown): KeyholdError {
  // jose reports a maxTokenAge failure as JWTExpired on claim "iat": check the claim first.
  if ((err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed) && err.claim === 'iat') return denied('token older than the role allows');
  if (err instanceof joseErrors.JWTExpired) return denied('token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return denied('token not yet valid');
    if (err.claim === 'aud') return denied('wrong audience');
    if (err.claim === 'iss') return denied('wrong issuer');
    return denied(`claim ${err.claim} invalid`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return denied('signature invalid');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return denied('not signed by a key of the cluster');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return denied('signing algorithm not allowed');
  if (err instanceof joseErrors.JOSEError) return denied(`malformed token (${err.code})`);
  // Ours (a refusal, or kube-apiserver unreachable while reading the JWKS) stays what it is.
  return err instanceof KeyholdError ? err : denied('token could not be verified');
}

/**
 * The Kubernetes claims of a verified payload. A pod claim without both name and uid is refused:
 * kube-apiserver never issues one, and half a pod can be neither checked live nor revoked.
 */
export function serviceAccountClaims(payload: JWTPayload): ServiceAccountClaims {
  const claims = (payload['kubernetes.io'] ?? {}) as KubernetesClaims;
  const { namespace, serviceaccount: sa, pod } = claims;
  if (typeof namespace !== 'string' || typeof sa?.name !== 'string' || typeof sa.uid !== 'string') throw denied('not a service-account token');
  if (payload.sub !== `system:serviceaccount:${namespace}:${sa.name}`) throw denied('subject does not match the service account');
  const serviceAccount = { name: sa.name, uid: sa.uid };
  if (pod === undefined) return { namespace, serviceAccount };
  if (typeof pod?.name !== 'string' || typeof pod.uid !== 'string') throw denied('the pod claim lacks a name or uid');
  return { namespace, serviceAccount, pod: { name: pod.name, uid: pod.uid } };
}
