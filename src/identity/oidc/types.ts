/** Shapes of OIDC single sign-on (src/identity/oidc/): the stored configuration and a login's answer. */

/** What `PUT /v1/auth/oidc/config` stores, in the barrier. */
export interface OidcConfig {
  /** The provider's issuer identifier, exactly as its discovery document names it. */
  issuer: string;
  clientId: string;
  /** Sent to the token endpoint only (client_secret_basic); never logged, never answered by a GET. */
  clientSecret: string;
  /** Where the provider may send the browser back; a login names one of them. */
  redirectUris: string[];
  /** The ID token claim that lists the person's groups at the provider. */
  groupsClaim: string;
  /** Scopes asked for; always includes `openid`. */
  scopes: string[];
  /** Ask the provider to re-authenticate the person if their session there is older (OIDC max_age); auth_time is then checked. */
  maxAgeSeconds?: number;
}

/** The provider's metadata keyhold uses, from its discovery document (checked). */
export interface ProviderMetadata {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  jwksUri: string;
  /** Signing algorithms of ID tokens keyhold accepts from this provider: its list ∩ keyhold's allow-list. */
  idTokenAlgorithms: string[];
}

/** A login under way: made by `auth-url`, consumed once by the callback. */
export interface FlowRecord {
  /** The redirect URI the authorization request named: the token request must name the same. */
  redirectUri: string;
  nonce: string;
  codeVerifier: string;
  /** sha256 of the browser-binding cookie's value (the browser form of the callback requires it). */
  browserBinding: string;
  /** The configuration's issuer and client when the flow began: a flow outlives no reconfiguration. */
  issuer: string;
  clientId: string;
  maxAgeSeconds?: number;
  expiresAt: number;
}

/** The person an ID token names, once every check passed. */
export interface OidcPerson {
  subject: string;
  issuer: string;
  /** The groups claim's values (strings only), as the provider sent them. */
  groups: string[];
  /** For audit and display: the `preferred_username` or `email` claim, when present. */
  name?: string;
}

export interface OidcLoginResult {
  token: string;
  accessor: string;
  expiresAt: string;
  policies: string[];
  /** The keyhold groups whose SSO group names matched. */
  groups: string[];
  person: OidcPerson;
  selectors: string[];
}
