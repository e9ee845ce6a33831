/** Wire shapes of OIDC single sign-on (`/v1/auth/oidc/...`). */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

const Url = Type.String({ minLength: 1, maxLength: 2048 });
/** A claim name (Keycloak `groups`, Entra `groups` or `roles`, Okta a custom claim name). */
const ClaimName = Type.String({ pattern: '^[A-Za-z0-9_:./-]{1,128}$' });
/** A scope token (RFC 6749 §3.3: printable ASCII without space, `"` or `\`). */
const Scope = Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$' });

export const OidcConfigBody = Closed({
  issuer: Url,
  client_id: Type.String({ pattern: '^[\\x21-\\x7e]{1,255}$' }),
  /** Optional on a later write for the same issuer and client_id: the stored secret is kept. */
  client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: '^[\\x20-\\x7e]+$' })),
  redirect_uris: Type.Array(Url, { minItems: 1, maxItems: 16, uniqueItems: true }),
  groups_claim: Type.Optional(ClaimName),
  scopes: Type.Optional(Type.Array(Scope, { minItems: 1, maxItems: 32, uniqueItems: true })),
  max_age_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
});
export type OidcConfigBody = Static<typeof OidcConfigBody>;

/** The configuration as read back: never the client secret. */
export const OidcConfigView = Closed({
  issuer: Type.String(), client_id: Type.String(), client_secret_set: Type.Boolean(), redirect_uris: Type.Array(Type.String()),
  groups_claim: Type.String(), scopes: Type.Array(Type.String()), max_age_seconds: Type.Optional(Type.Integer()),
});
export type OidcConfigView = Static<typeof OidcConfigView>;

export const AuthUrlBody = Closed({ redirect_uri: Url });
export type AuthUrlBody = Static<typeof AuthUrlBody>;
export const AuthUrlView = Closed({ auth_url: Type.String() });
export type AuthUrlView = Static<typeof AuthUrlView>;

/** `<expiry ms>.<43 base64url>`, as keyhold hands it out (src/identity/oidc/flows.ts). */
const State = Type.String({ maxLength: 64, pattern: '^[0-9]{13}\\.[A-Za-z0-9_-]{43}$' });
const Code = Type.String({ minLength: 1, maxLength: 2048, pattern: '^[\\x20-\\x7e]+$' });
/** RFC 9207: the provider says who it is in the authorization response (a mix-up defence). */
const Iss = Type.String({ minLength: 1, maxLength: 2048 });

export const CallbackBody = Closed({ code: Code, state: State, iss: Type.Optional(Iss), session: Type.Optional(Type.Boolean()) });
export type CallbackBody = Static<typeof CallbackBody>;

/** The browser form: what a provider sends back in the query (success or error; Keycloak and Entra add session_state). */
export const CallbackQuery = Closed({
  code: Type.Optional(Code), state: Type.Optional(Type.String({ maxLength: 2048 })), iss: Type.Optional(Iss),
  session_state: Type.Optional(Type.String({ maxLength: 1024 })),
  error: Type.Optional(Type.String({ maxLength: 256 })), error_description: Type.Optional(Type.String({ maxLength: 2048 })), error_uri: Type.Optional(Type.String({ maxLength: 2048 })),
});
export type CallbackQuery = Static<typeof CallbackQuery>;

const Identity = Closed({
  selectors: Type.Array(Type.String()), subject: Type.String(), issuer: Type.String(), name: Type.Optional(Type.String()),
  /** keyhold groups the person's provider groups matched. */
  groups: Type.Array(Type.String()),
  /** The groups claim's values, as the provider sent them. */
  external_groups: Type.Array(Type.String()),
});

/** The login answer: the token, or (with `session: true`) the CSRF token of the session cookie instead. */
export const OidcLoginView = Closed({
  token: Type.Optional(Type.String()), csrf_token: Type.Optional(Type.String()),
  accessor: Type.String(), expires_at: Type.String(), policies: Type.Array(Type.String()), identity: Identity,
});
export type OidcLoginView = Static<typeof OidcLoginView>;
