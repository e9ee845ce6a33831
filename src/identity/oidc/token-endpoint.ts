/**
 * The code exchange (OIDC Core §3.1.3): client_secret_basic (RFC 6749 §2.3.1: id and secret
 * form-urlencoded, then base64 in the Authorization header), the PKCE verifier, the redirect URI
 * of the authorization request. Only the ID token is used: keyhold needs who the person is, not
 * access to anything at the provider, so the access and refresh tokens are dropped unread.
 */
import { KeyholdError } from '../../errors.js';
import { callProvider } from './http.js';
import type { OidcConfig, ProviderMetadata } from './types.js';

/** A form-urlencoded component as RFC 6749 Appendix B wants it (space as +, then %20 is fine too). */
const formEncode = (value: string): string => encodeURIComponent(value).replace(/%20/g, '+');

export async function exchangeCode(metadata: ProviderMetadata, config: OidcConfig, input: { code: string; codeVerifier: string; redirectUri: string }): Promise<string> {
  const basic = Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`).toString('base64');
  const body = new URLSearchParams({ grant_type: 'authorization_code', code: input.code, redirect_uri: input.redirectUri, code_verifier: input.codeVerifier }).toString();
  const answer = await callProvider(metadata.tokenEndpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  }, 'token endpoint');
  if (answer.status !== 200) {
    // Only the standard error code (RFC 6749 §5.2), never error_description: it is the provider's text.
    const error = typeof answer.json?.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(answer.json.error) ? answer.json.error : undefined;
    if (answer.status === 400 && error === 'invalid_grant') {
      throw new KeyholdError('ERR_OIDC_CODE_INVALID', 'the provider refused the authorization code (invalid_grant: unknown, already used, expired, or issued for another redirect URI or verifier)');
    }
    if (error === 'invalid_client' || error === 'unauthorized_client') {
      throw new KeyholdError('ERR_OIDC_PROVIDER_ERROR', `the provider refused keyhold's client credentials (${error}): check client_id and client_secret`);
    }
    throw new KeyholdError('ERR_OIDC_PROVIDER_ERROR', `the token endpoint answered HTTP ${answer.status}${error ? ` (${error})` : ''}`);
  }
  const idToken = answer.json?.id_token;
  if (typeof idToken !== 'string' || idToken.length === 0) throw new KeyholdError('ERR_OIDC_TOKEN_INVALID', 'the token response has no id_token (is "openid" among the scopes?)');
  if (idToken.length > 64 * 1024) throw new KeyholdError('ERR_OIDC_TOKEN_INVALID', 'the ID token is larger than 64 KiB');
  return idToken;
}
