/**
 * The login routes of the operator-account and OIDC parts of the API. With `session: true` they
 * set the HttpOnly session cookie and answer only `{ csrf_token, ... }`: the token never reaches
 * the page.
 */
import { api } from './api';

const RECOVERY = /^[^0-9]|[^0-9]/;

export const LOGIN_ROUTES = {
  /** A 6-digit code is a TOTP code; anything else is taken as a recovery code. */
  operator: async (username: string, password: string, code: string) => {
    const c = code.trim();
    const second = /^[0-9]{6}$/.test(c) || !RECOVERY.test(c) ? { totp: c } : { recovery_code: c };
    return (await api<{ csrf_token: string }>('POST', '/v1/auth/operator/login', { username, password, ...second, session: true })).body;
  },
  /** Whether OIDC single sign-on is configured (a public route; no storage read). */
  ssoAvailable: async () => (await api<{ oidc: boolean }>('GET', '/v1/auth/methods')).body.oidc,
  /**
   * SSO: the server makes the provider's authorization URL (PKCE, state, nonce, a browser-binding
   * cookie) and the browser goes there; the provider sends it back to /v1/auth/oidc/callback,
   * which sets the session cookie and redirects to /ui/.
   */
  ssoStart: async () => {
    const { auth_url } = (await api<{ auth_url: string }>('POST', '/v1/auth/oidc/auth-url', { redirect_uri: `${location.origin}/v1/auth/oidc/callback` })).body;
    location.assign(auth_url);
  },
};

/** What the SSO callback's redirect says went wrong (`#/login?error=CODE`), in words. */
export function ssoErrorFromHash(hash: string): string | undefined {
  const m = /^#\/login\?(.*)$/.exec(hash);
  if (!m) return undefined;
  const code = new URLSearchParams(m[1]).get('error');
  if (!code) return undefined;
  const words: Record<string, string> = {
    ERR_OIDC_LOGIN_DENIED: 'the identity provider did not sign you in.',
    ERR_OIDC_GROUPS_UNMAPPED: 'none of your identity provider groups is mapped to keyhold.',
    ERR_NO_POLICIES: 'your groups give you no access to keyhold.',
  };
  return `Single sign-on failed: ${words[code] ?? 'the sign-in could not be completed.'} (${code.replace(/[^A-Z_]/g, '')})`;
}
