/**
 * Wire shapes of operator accounts, groups and the capabilities route (issue 12). Request bodies
 * need the server's name patterns and are declared with their routes (src/api/routes/); these are
 * the answers, whose types the CLI takes.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/** Who a person's login token speaks for (operator logins; SSO logins add their own fields). */
export const PersonIdentity = Closed({
  /** `operator:<name>` or `oidc:<sub>` (src/identity/person.ts). */
  person: Type.String(),
  operator: Type.Optional(Type.String()),
  /** The keyhold groups the policies came from. */
  groups: Type.Array(Type.String()),
  selectors: Type.Array(Type.String()),
});
export type PersonIdentity = Static<typeof PersonIdentity>;

/**
 * A person's login: the token in the body, or (`"session": true`) in an HttpOnly cookie, with
 * the CSRF token the console sends back on every state-changing call instead.
 */
export const PersonLoginView = Closed({
  token: Type.Optional(Type.String()),
  accessor: Type.Optional(Type.String()),
  csrf_token: Type.Optional(Type.String()),
  expires_at: Type.String(),
  policies: Type.Array(Type.String()),
  identity: PersonIdentity,
});
export type PersonLoginView = Static<typeof PersonLoginView>;

/** Enrolment's first step: the TOTP secret, shown once. */
export const EnrolView = Closed({
  otpauth_uri: Type.String({ description: 'otpauth://totp/… with the secret: shown once, never again' }),
  qr_svg: Type.String({ description: 'the same URI as a QR code (SVG)' }),
});
export type EnrolView = Static<typeof EnrolView>;

export const EnrolConfirmView = Closed({
  recovery_codes: Type.Array(Type.String(), { description: 'each usable once instead of a TOTP code; shown once, stored only as hashes' }),
});
export type EnrolConfirmView = Static<typeof EnrolConfirmView>;

/** What an administrator sees of an account: never a hash, secret or code. */
export const OperatorView = Closed({
  name: Type.String(),
  created_at: Type.String(),
  password_changed_at: Type.String(),
  enrolled: Type.Boolean({ description: 'TOTP confirmed: the account can log in' }),
  recovery_codes_left: Type.Integer(),
  failures: Type.Integer({ description: 'consecutive failed attempts' }),
  locked_until: Type.Optional(Type.String()),
  last_login_at: Type.Optional(Type.String()),
  revoked_tokens: Type.Optional(Type.Integer({ description: 'live login tokens revoked by a reset' })),
});
export type OperatorView = Static<typeof OperatorView>;

export const OperatorList = Closed({ operators: Type.Array(Type.String()) });
export type OperatorList = Static<typeof OperatorList>;

export const GroupView = Closed({
  name: Type.String(),
  policies: Type.Array(Type.String()),
  members: Type.Array(Type.String()),
  external_groups: Type.Array(Type.String()),
});
export type GroupView = Static<typeof GroupView>;

export const GroupList = Closed({ groups: Type.Array(Type.String()) });
export type GroupList = Static<typeof GroupList>;

/** `GET /v1/sys/capabilities?path=…`: what the calling token may do on a path, and why. */
export const CapabilitiesView = Closed({
  path: Type.String(),
  capabilities: Type.Array(Type.String()),
  policies: Type.Array(Type.String()),
  identity: Closed({
    person: Type.Optional(Type.String()),
    selectors: Type.Array(Type.String()),
    display_name: Type.Optional(Type.String()),
  }),
});
export type CapabilitiesView = Static<typeof CapabilitiesView>;
