/**
 * PKCE (RFC 7636) with S256 only: `plain` would put the verifier itself in the authorization
 * request, where anyone who sees the URL could redeem the code with it.
 */
import { createHash, randomBytes } from 'node:crypto';

/** 32 random bytes, base64url: 43 characters, inside RFC 7636's 43–128 from its unreserved set. */
export function newCodeVerifier(): string {
  return randomBytes(32).toString('base64url');
}

/** BASE64URL(SHA256(ASCII(verifier))), RFC 7636 §4.2. */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** A fresh random value for `state`, `nonce` and the browser binding: 256 bits, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}
