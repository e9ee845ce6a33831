/** The authorization request (OIDC Core §3.1.2.1): the code flow, with PKCE S256, state and nonce. */
import { s256Challenge } from './pkce.js';
import type { NewFlow } from './flows.js';
import type { OidcConfig, ProviderMetadata } from './types.js';

export function authorizationUrl(metadata: ProviderMetadata, config: OidcConfig, redirectUri: string, flow: NewFlow): string {
  const url = new URL(metadata.authorizationEndpoint);
  // Set, not appended: an endpoint URL that already carries one of these must not smuggle a second value.
  const params: Record<string, string> = {
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: redirectUri,
    scope: config.scopes.join(' '),
    state: flow.state,
    nonce: flow.nonce,
    code_challenge: s256Challenge(flow.codeVerifier),
    code_challenge_method: 'S256',
    ...(config.maxAgeSeconds !== undefined ? { max_age: String(config.maxAgeSeconds) } : {}),
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}
