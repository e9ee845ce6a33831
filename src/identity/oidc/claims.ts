/**
 * The ID token checks jose's jwtVerify does not make (OIDC Core §3.1.3.7): nonce, azp, auth_time,
 * and the shape of sub and the groups claim. Pure: the claims and the expectations are data, so
 * every branch is unit-tested.
 */
import { timingSafeEqual } from 'node:crypto';
import { KeyholdError } from '../../errors.js';
import type { OidcPerson } from './types.js';

export interface ClaimExpectations {
  issuer: string;
  clientId: string;
  nonce: string;
  groupsClaim: string;
  maxAgeSeconds?: number;
  clockToleranceSeconds: number;
  /** Seconds since the epoch. */
  now: number;
}

/** A group name longer than this, or more groups than this, is not a groups claim keyhold maps. */
export const MAX_GROUP_NAME = 256;
export const MAX_GROUPS = 1000;

const invalid = (reason: string) => new KeyholdError('ERR_OIDC_TOKEN_INVALID', `ID token refused: ${reason}`, { details: { reason } });

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `sub`: OIDC Core §2 says at most 255 ASCII characters; it becomes the selector `oidc:<sub>`, so no controls or spaces. */
const SUBJECT_PATTERN = /^[\x21-\x7e]{1,255}$/;

function groupsOf(value: unknown, claim: string): string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((g): g is string => typeof g === 'string')) throw invalid(`the "${claim}" claim is not a list of strings`);
  if (list.length > MAX_GROUPS) throw invalid(`the "${claim}" claim lists more than ${MAX_GROUPS} groups`);
  if (list.some((g) => g.length === 0 || g.length > MAX_GROUP_NAME)) throw invalid(`the "${claim}" claim has an empty group name or one longer than ${MAX_GROUP_NAME} characters`);
  return [...new Set(list)];
}

/** The person `claims` name, after the checks jwtVerify leaves to the client. Throws ERR_OIDC_TOKEN_INVALID with the reason. */
export function checkClaims(claims: Record<string, unknown>, expect: ClaimExpectations): OidcPerson {
  if (typeof claims.nonce !== 'string' || !sameString(claims.nonce, expect.nonce)) throw invalid('nonce mismatch (the ID token was not issued for this login)');
  const aud = claims.aud;
  const audiences = Array.isArray(aud) ? aud : [aud];
  // Several audiences: the token must say it was issued to keyhold (azp), or another audience's client could replay it here.
  if (audiences.length > 1 && claims.azp === undefined) throw invalid('several audiences and no azp claim');
  if (claims.azp !== undefined && claims.azp !== expect.clientId) throw invalid(`azp is not this client (${expect.clientId})`);
  if (expect.maxAgeSeconds !== undefined) {
    if (typeof claims.auth_time !== 'number' || !Number.isFinite(claims.auth_time)) throw invalid('no auth_time, and max_age was asked for');
    if (expect.now - claims.auth_time > expect.maxAgeSeconds + expect.clockToleranceSeconds) throw invalid(`the person authenticated at the provider more than max_age (${expect.maxAgeSeconds} s) ago`);
    if (claims.auth_time > expect.now + expect.clockToleranceSeconds) throw invalid('auth_time is in the future');
  }
  if (typeof claims.iat === 'number' && claims.iat > expect.now + expect.clockToleranceSeconds) throw invalid('iat is in the future');
  if (typeof claims.sub !== 'string' || !SUBJECT_PATTERN.test(claims.sub)) throw invalid('sub is missing, or not 1–255 printable ASCII characters');
  const name = [claims.preferred_username, claims.email].find((v): v is string => typeof v === 'string' && /^[\x21-\x7e]{1,128}$/.test(v));
  return { subject: claims.sub, issuer: expect.issuer, groups: groupsOf(claims[expect.groupsClaim], expect.groupsClaim), ...(name ? { name } : {}) };
}
