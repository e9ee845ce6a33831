/**
 * The console's session routes. They are ordinary API routes (authenticated and audited like any
 * other): the console has no private back door, only the session cookie in place of the
 * Authorization header (session.ts, auth.ts).
 */
import { personOf } from '../../identity/person.js';
import type { TokenRecord, TokenStore } from '../../identity/tokens.js';
import { MOUNTS } from '../../barrier/mounts.js';
import { KeyholdError } from '../../errors.js';
import { LoginMethods, SessionStarted, SessionView } from '../../wire/console.js';
import { callerToken } from '../auth.js';
import { route, type ApiPlugin } from '../route.js';
import { ErrorResponse, NoContent, withErrors } from '../schemas.js';
import { bySession, csrfToken, endSession, startSession } from '../session.js';

export interface SessionApiOptions {
  tokens: Pick<TokenStore, 'create' | 'revoke'>;
  /** Lifetime of a session started from a token (config `ui.sessionTtlSeconds`). */
  sessionTtlSeconds: number;
  /** Whether OIDC single sign-on is configured (the barrier's read cache: no storage read per call). */
  oidcConfigured: () => Promise<boolean>;
}

/** The person (`operator:<name>` / `oidc:<sub>`, as approvals name requesters), else the token's name. */
function identityOf(t: TokenRecord): string {
  return personOf(t) ?? t.displayName ?? 'token';
}

export const sessionApi: ApiPlugin<SessionApiOptions> = async (app, { tokens, sessionTtlSeconds, oidcConfigured }) => {
  // What the login page offers. Public (as the login page itself is): it says only whether SSO is
  // set up, which the page would show anyway; never the issuer or the client.
  route(app, {
    method: 'GET', url: '/v1/auth/methods', public: true,
    schema: { tags: ['auth'], summary: 'The ways to log in: operator password + TOTP always, OIDC single sign-on when configured', response: { 200: LoginMethods } },
    handler: async () => ({ operator: true, oidc: await oidcConfigured() }),
  });

  route(app, {
    method: 'GET', url: '/v1/auth/session', operation: 'auth.session.read',
    schema: { tags: ['auth'], summary: 'Who am I: identity, policies, expiry, and (for a console session) a fresh CSRF token', response: withErrors({ 200: SessionView }) },
    // Any valid token may read itself.
    authorize: () => [],
    handler: async (req, reply) => {
      const t = callerToken(req);
      const session = bySession(req);
      return {
        identity: identityOf(t), policies: t.policies, via: session ? 'session' as const : 'bearer' as const,
        ...(t.displayName ? { display_name: t.displayName } : {}), ...(t.accessor ? { accessor: t.accessor } : {}),
        ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(session ? { csrf_token: csrfToken(reply) } : {}),
      };
    },
  });

  route(app, {
    method: 'POST', url: '/v1/auth/logout', operation: 'auth.logout',
    schema: { tags: ['auth'], summary: 'End the console session: revoke its token with its children and clear the cookies (session cookie only)', response: { 204: NoContent, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse } },
    authorize: () => [],
    handler: async (req, reply) => {
      // A session's end. A bearer caller revokes its token with DELETE /v1/tokens/self, deliberately:
      // a script calling "logout" with the root token must not revoke the root token by accident.
      if (!bySession(req)) throw new KeyholdError('ERR_BAD_REQUEST', 'logout ends a console session (the session cookie); to revoke a bearer token use DELETE /v1/tokens/self');
      await tokens.revoke(callerToken(req).id);
      endSession(reply);
      return reply.code(204).send();
    },
  });

  // The root bootstrap (and any token holder): a console session from a token typed into the
  // login page, sent once as a bearer token. The session holds a short-lived child of it, never
  // the token itself, so logging out of the console does not revoke the root token, and the
  // child dies with its parent. Needs what POST /v1/tokens needs: create on sys/tokens.
  route(app, {
    method: 'POST', url: '/v1/auth/token/session', operation: 'auth.token.session',
    schema: { tags: ['auth'], summary: 'Start a console session holding a short-lived child of the bearer token', response: withErrors({ 200: SessionStarted }) },
    authorize: () => [[MOUNTS.tokens.policy, 'create']],
    handler: async (req, reply) => {
      if (bySession(req)) throw new KeyholdError('ERR_BAD_REQUEST', 'send the token as Authorization: Bearer; a session cannot start another one');
      const caller = callerToken(req);
      const { token, record } = await tokens.create({
        // The caller's name, so the console and the audit log name the person, not "a session".
        policies: caller.policies, ttlSeconds: sessionTtlSeconds, displayName: caller.displayName ?? 'console session', parent: caller,
        ...(caller.selectors ? { selectors: caller.selectors } : {}),
      });
      req.keyhold.auditFields.issued_accessor = record.accessor as string;
      const expiresAt = record.expiresAt as string;
      return { ...startSession(reply, token, expiresAt), expires_at: expiresAt, policies: record.policies, accessor: record.accessor as string };
    },
  });
};
