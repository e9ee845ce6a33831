/**
 * ID token validation (OIDC Core §3.1.3.7) with jose: the signature against the provider's JWKS
 * (from its discovered jwks_uri; jose refetches it when a token names a key it has not seen, with
 * a cooldown), an asymmetric algorithm the provider advertises and keyhold allows, the issuer,
 * keyhold's client id among the audiences, exp/iat with a small clock tolerance; then the checks
 * in claims.ts. Every refusal is ERR_OIDC_TOKEN_INVALID with the reason; a JWKS that cannot be
 * fetched is the provider's failure (ERR_OIDC_PROVIDER_*), not the token's.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { KeyholdError } from '../../errors.js';
import { checkClaims, type ClaimExpectations } from './claims.js';
import { PROVIDER_TIMEOUT_MS } from './http.js';
import type { OidcPerson, ProviderMetadata } from './types.js';

/** Provider and keyhold clocks may differ by this much. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** The ID token comes straight from the token endpoint: one issued longer ago than this is not from this exchange. */
export const MAX_ID_TOKEN_AGE_SECONDS = 10 * 60;

/** One remote key set per jwks_uri (jose caches the keys inside it). */
const keySets = new Map<string, JWTVerifyGetKey>();
function keySet(jwksUri: string): JWTVerifyGetKey {
  let set = keySets.get(jwksUri);
  if (!set) {
    if (keySets.size >= 16) keySets.clear();
    set = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: PROVIDER_TIMEOUT_MS, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
    keySets.set(jwksUri, set);
  }
  return set;
}

const invalid = (reason: string, cause?: unknown) => new KeyholdError('ERR_OIDC_TOKEN_INVALID', `ID token refused: ${reason}`, { cause, details: { reason } });

function refusal(err: unknown): KeyholdError {
  if (err instanceof KeyholdError) return err;
  if (err instanceof joseErrors.JWTExpired) return invalid(err.claim === 'exp' ? 'expired (exp is past, beyond the clock tolerance)' : `too old (${err.reason ?? err.message})`, err);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return invalid('wrong audience (aud does not include this client)', err);
    if (err.claim === 'iss') return invalid('wrong issuer (iss is not the configured issuer)', err);
    return invalid(`the "${err.claim}" claim failed its check (${err.reason})`, err);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalid('bad signature', err);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return invalid('signed with an algorithm keyhold does not accept (asymmetric algorithms the provider advertises only)', err);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return invalid('signed by a key the provider does not publish', err);
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return invalid('its key id matches several of the provider\'s keys', err);
  if (err instanceof joseErrors.JWKSTimeout) return new KeyholdError('ERR_OIDC_PROVIDER_UNREACHABLE', `the provider's jwks_uri did not answer within ${PROVIDER_TIMEOUT_MS / 1000} s`, { cause: err });
  if (err instanceof joseErrors.JWKSInvalid) {
    return new KeyholdError('ERR_OIDC_PROVIDER_ERROR', 'the provider\'s jwks_uri answered something that is not a usable JWK set', { cause: err });
  }
  if (err instanceof joseErrors.JOSEError) {
    // ERR_JWKS_* not handled above is the key set's fault (e.g. an HTTP error at jwks_uri).
    if (err.code.startsWith('ERR_JWKS')) return new KeyholdError('ERR_OIDC_PROVIDER_ERROR', 'the provider\'s jwks_uri could not be used', { cause: err });
    return invalid(`malformed (${err.code})`, err);
  }
  if (err instanceof TypeError || (err as Error).name === 'AbortError') return new KeyholdError('ERR_OIDC_PROVIDER_UNREACHABLE', 'the provider\'s jwks_uri could not be reached', { cause: err });
  return new KeyholdError('ERR_OIDC_PROVIDER_ERROR', 'the provider\'s jwks_uri could not be used', { cause: err });
}

export async function verifyIdToken(idToken: string, metadata: ProviderMetadata, expect: Omit<ClaimExpectations, 'now' | 'clockToleranceSeconds' | 'issuer'>): Promise<OidcPerson> {
  try {
    const { payload } = await jwtVerify(idToken, keySet(metadata.jwksUri), {
      issuer: metadata.issuer,
      audience: expect.clientId,
      algorithms: metadata.idTokenAlgorithms,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: MAX_ID_TOKEN_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'iat', 'sub'],
    });
    return checkClaims(payload as Record<string, unknown>, { ...expect, issuer: metadata.issuer, clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS, now: Math.floor(Date.now() / 1000) });
  } catch (err) {
    throw refusal(err);
  }
}
