/**
 * Which URLs keyhold talks to or sends browsers to for SSO. An issuer, its endpoints and the
 * redirect URIs are https, except on a loopback address (127.0.0.0/8, ::1, localhost), where
 * traffic never leaves the host (the same exception RFC 8252 §7.3 makes for redirect URIs): a
 * provider run beside keyhold, and the tests' provider. No credentials in a URL, no fragment.
 */
import { isIP } from 'node:net';
import { KeyholdError, type KeyholdErrorCode } from '../../errors.js';

function isLoopback(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/**
 * The parsed URL, or `code` naming `what` and why it is refused. Checked both where a person
 * configures it and where a provider's metadata names it.
 */
export function checkedUrl(value: string, what: string, code: KeyholdErrorCode): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new KeyholdError(code, `${what} is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw new KeyholdError(code, `${what} must be an https URL (http only on a loopback address)`);
  }
  if (url.username !== '' || url.password !== '') throw new KeyholdError(code, `${what} must not carry credentials`);
  if (url.hash !== '') throw new KeyholdError(code, `${what} must not have a fragment`);
  return url;
}
