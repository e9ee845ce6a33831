/**
 * Issuer discovery (OpenID Connect Discovery 1.0 §4): `<issuer>/.well-known/openid-configuration`,
 * checked before anything in it is used. The document's `issuer` must equal the configured one
 * exactly (§4.3: otherwise a document served for one issuer could steer logins to another's
 * endpoints and keys); the endpoints must be https (or loopback); the provider must be able to do
 * what keyhold requires (the code flow, PKCE S256, client_secret_basic, an asymmetric ID token
 * algorithm). Kept for a few minutes per issuer, so a login costs no discovery round trip.
 */
import { KeyholdError, type KeyholdErrorCode } from '../../errors.js';
import { acceptedAlgorithms } from './algorithms.js';
import { callProvider } from './http.js';
import type { ProviderMetadata } from './types.js';
import { checkedUrl } from './urls.js';

const CACHE_MS = 5 * 60_000;

export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);

/**
 * The metadata of `doc` for `issuer`, or `code` saying what is wrong with it (ERR_OIDC_DISCOVERY_INVALID
 * when a configuration is written, ERR_OIDC_PROVIDER_ERROR at a login: the provider changed).
 */
export function checkMetadata(issuer: string, doc: Record<string, unknown>, code: KeyholdErrorCode): ProviderMetadata {
  const bad = (why: string) => new KeyholdError(code, `the provider's discovery document ${why}`);
  if (doc.issuer !== issuer) throw bad(`names issuer ${JSON.stringify(typeof doc.issuer === 'string' ? doc.issuer.slice(0, 256) : doc.issuer ?? null)}, not the configured ${JSON.stringify(issuer)}`);
  const url = (field: string): string => {
    const v = doc[field];
    if (typeof v !== 'string') throw bad(`has no ${field}`);
    return checkedUrl(v, `the provider's ${field}`, code).href;
  };
  const responseTypes = strings(doc.response_types_supported);
  if (!responseTypes?.some((t) => t.split(' ').length === 1 && t === 'code')) throw bad('does not list the authorization code flow (response_types_supported has no "code")');
  // Absent means "not said" (Entra ID omits it); present without S256 means PKCE cannot be done as keyhold requires.
  const pkce = strings(doc.code_challenge_methods_supported);
  if (pkce && !pkce.includes('S256')) throw bad('does not support PKCE with S256 (code_challenge_methods_supported)');
  // Absent means client_secret_basic (OIDC Discovery §3).
  const auth = strings(doc.token_endpoint_auth_methods_supported);
  if (auth && !auth.includes('client_secret_basic')) throw bad('does not support client_secret_basic at the token endpoint');
  const algorithms = acceptedAlgorithms(strings(doc.id_token_signing_alg_values_supported));
  if (algorithms.length === 0) throw bad('lists no ID token signing algorithm keyhold accepts (asymmetric: RS*, PS*, ES*, EdDSA)');
  return { issuer, authorizationEndpoint: url('authorization_endpoint'), tokenEndpoint: url('token_endpoint'), jwksUri: url('jwks_uri'), idTokenAlgorithms: algorithms };
}

/** Fetches and checks `issuer`'s discovery document. */
export async function discover(issuer: string, code: KeyholdErrorCode): Promise<ProviderMetadata> {
  const answer = await callProvider(discoveryUrl(issuer), { method: 'GET' }, 'discovery document');
  if (answer.status !== 200) throw new KeyholdError(answer.status >= 500 ? 'ERR_OIDC_PROVIDER_ERROR' : code, `the provider's discovery document answered HTTP ${answer.status} at ${discoveryUrl(issuer)}`);
  if (!answer.json) throw new KeyholdError(code, 'the provider\'s discovery document is not a JSON object');
  return checkMetadata(issuer, answer.json, code);
}

/** Discovery results per issuer, for a few minutes (a failed discovery is not kept). */
export class DiscoveryCache {
  readonly #entries = new Map<string, { at: number; metadata: Promise<ProviderMetadata> }>();

  constructor(private readonly now: () => number = Date.now) {}

  get(issuer: string): Promise<ProviderMetadata> {
    const hit = this.#entries.get(issuer);
    if (hit && this.now() - hit.at < CACHE_MS) return hit.metadata;
    const metadata = discover(issuer, 'ERR_OIDC_PROVIDER_ERROR');
    const entry = { at: this.now(), metadata };
    this.#entries.set(issuer, entry);
    metadata.catch(() => {
      if (this.#entries.get(issuer) === entry) this.#entries.delete(issuer);
    });
    return metadata;
  }

  /** Remembers metadata just checked (a configuration write), so the first login need not fetch it again. */
  set(metadata: ProviderMetadata): void {
    this.#entries.clear();
    this.#entries.set(metadata.issuer, { at: this.now(), metadata: Promise.resolve(metadata) });
  }

  clear(): void {
    this.#entries.clear();
  }
}
