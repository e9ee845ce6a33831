/**
 * OIDC single sign-on routes: the configuration (root only: it decides who may log in as anyone),
 * the start of a login (the provider's authorization URL) and its end, in two forms: JSON for API
 * clients, and a GET the provider redirects the browser to, which sets the console's session
 * cookie and redirects to /ui/. Never audited: the code, state, nonce, verifier or any token
 * (the body is only HMAC'd, as every body is).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AuditHmac } from '../../audit/hmac.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { KeyholdError } from '../../errors.js';
import { FLOW_TTL_MS } from '../../identity/oidc/flows.js';
import type { OidcAuth } from '../../identity/oidc/oidc-auth.js';
import type { OidcLoginResult } from '../../identity/oidc/types.js';
import { tokenId } from '../../identity/tokens.js';
import { assertCanChangeIdentitySource } from '../../policy/confer.js';
import { AuthUrlBody, AuthUrlView, CallbackBody, CallbackQuery, OidcConfigBody, OidcConfigView, OidcLoginView } from '../../wire/auth-oidc.js';
import { callerToken } from '../auth.js';
import { deleteRoute, getRoute, route, type ApiPlugin } from '../route.js';
import { Closed, ErrorResponse, NoContent, withErrors } from '../schemas.js';
import { cookiesOf, startSession } from '../session.js';

export interface OidcAuthApiOptions {
  oidcAuth: OidcAuth;
  /** Names the issued token in the login's audit record as its own records name it. */
  auditHmac: Pick<AuditHmac, 'mac'>;
}

const CONFIG_PATH = policyPath(MOUNTS.oidc, 'config');
export const CALLBACK_PATH = '/v1/auth/oidc/callback';
/**
 * Binds a login to the browser that began it: the browser form of the callback requires it, so a
 * code and state an attacker obtained for their own account cannot be planted in someone else's
 * browser (login CSRF). Lax, not Strict: it must come back on the provider's cross-site redirect.
 */
export const FLOW_COOKIE = 'keyhold_oidc_flow';
const FLOW_COOKIE_OPTIONS = { httpOnly: true, secure: true, sameSite: 'lax', path: CALLBACK_PATH } as const;
const UI_HOME = '/ui/';
const uiLoginError = (code: string) => `/ui/#/login?error=${encodeURIComponent(code)}`;

const withProviderErrors = <T extends Record<number, ReturnType<typeof Type.Object> | typeof NoContent>>(ok: T) => ({ ...withErrors(ok), 502: ErrorResponse });

function loginView(result: OidcLoginResult, csrf?: string) {
  return {
    ...(csrf === undefined ? { token: result.token } : { csrf_token: csrf }),
    accessor: result.accessor, expires_at: result.expiresAt, policies: result.policies,
    identity: {
      selectors: result.selectors, subject: result.person.subject, issuer: result.person.issuer, ...(result.person.name ? { name: result.person.name } : {}),
      groups: result.groups, external_groups: result.person.groups,
    },
  };
}

/** RFC 9207: an authorization response naming another issuer came from another provider (a mix-up). */
function checkIss(iss: string | undefined, oidc: OidcAuth): Promise<void> {
  if (iss === undefined) return Promise.resolve();
  return oidc.describeConfig().then((c) => {
    if (c.issuer !== iss) throw new KeyholdError('ERR_OIDC_STATE_INVALID', 'the authorization response names another issuer (iss) than the configured one');
  });
}

export const oidcAuthApi: ApiPlugin<OidcAuthApiOptions> = async (app, { oidcAuth: oidc, auditHmac }) => {
  /** Ends a login and records its non-secret facts; the caller decides how to answer. */
  const finish = async (req: FastifyRequest, input: { code: string; state: string; iss?: string | undefined; browserBinding?: string | null }): Promise<OidcLoginResult> => {
    const fields = req.keyhold.auditFields;
    try {
      await checkIss(input.iss, oidc);
      const result = await oidc.finishLogin(
        { code: input.code, state: input.state, ...(input.browserBinding !== undefined ? { browserBinding: input.browserBinding } : {}) },
        (facts) => Object.assign(fields, facts),
      );
      fields.selectors = result.selectors.join(' ');
      // The same handle as the token's own audit records (actor.tokenId), so its uses can be traced to this login.
      fields.issued_token = auditHmac.mac(tokenId(result.token));
      fields.issued_accessor = result.accessor;
      return result;
    } catch (err) {
      fields.reason = err instanceof KeyholdError ? ((err.details?.reason as string | undefined) ?? err.message).slice(0, 512) : 'internal error';
      throw err;
    }
  };

  route(app, {
    method: 'PUT', url: '/v1/auth/oidc/config', operation: 'auth.oidc.configure',
    schema: { tags: ['auth'], summary: 'Configure OIDC single sign-on (checked against the provider\'s discovery document)', body: OidcConfigBody, response: withProviderErrors({ 204: NoContent }) },
    authorize: () => [[CONFIG_PATH, 'update']],
    handler: async (req, reply) => {
      assertCanChangeIdentitySource(callerToken(req), 'the OIDC login configuration');
      const b = req.body;
      req.keyhold.auditFields.issuer = b.issuer.slice(0, 256);
      req.keyhold.auditFields.client_id = b.client_id;
      await oidc.configure({
        issuer: b.issuer, clientId: b.client_id, ...(b.client_secret !== undefined ? { clientSecret: b.client_secret } : {}),
        redirectUris: b.redirect_uris, groupsClaim: b.groups_claim ?? 'groups', scopes: b.scopes ?? ['openid', 'profile', 'email'],
        ...(b.max_age_seconds !== undefined ? { maxAgeSeconds: b.max_age_seconds } : {}),
      });
      return reply.code(204).send();
    },
  });

  getRoute(app, {
    url: '/v1/auth/oidc/config', operation: 'auth.oidc.read-config', tag: 'auth', summary: 'Read the OIDC configuration (never the client secret)',
    schema: OidcConfigView, requires: [CONFIG_PATH, 'read'],
    answer: async () => {
      const c = await oidc.describeConfig();
      return {
        issuer: c.issuer, client_id: c.clientId, client_secret_set: c.clientSecretSet, redirect_uris: c.redirectUris, groups_claim: c.groupsClaim, scopes: c.scopes,
        ...(c.maxAgeSeconds !== undefined ? { max_age_seconds: c.maxAgeSeconds } : {}),
      };
    },
  });

  deleteRoute(app, {
    url: '/v1/auth/oidc/config', operation: 'auth.oidc.delete-config', tag: 'auth',
    summary: 'Turn SSO off: remove the OIDC configuration (tokens already issued live until they expire)',
    params: Closed({}),
    // Removing an identity source confers nothing, so it needs only `delete` (an incident switch), not root.
    authorize: () => [[CONFIG_PATH, 'delete']],
    remove: () => oidc.removeConfig(),
  });

  route(app, {
    method: 'POST', url: '/v1/auth/oidc/auth-url', operation: 'auth.oidc.auth-url',
    // Anyone may begin a login; each one stores a flow, so each counts toward the address's budget.
    anonymous: true, floodCounted: true,
    schema: { tags: ['auth'], summary: 'Begin an SSO login: the provider\'s authorization URL (code flow, PKCE S256, state, nonce)', body: AuthUrlBody, response: withProviderErrors({ 200: AuthUrlView }), security: [] },
    handler: async (req, reply) => {
      req.keyhold.auditFields.redirect_uri = req.body.redirect_uri.slice(0, 256);
      const { authUrl, browserBinding } = await oidc.startLogin(req.body.redirect_uri);
      void reply.setCookie(FLOW_COOKIE, browserBinding, { ...FLOW_COOKIE_OPTIONS, maxAge: FLOW_TTL_MS / 1000 });
      return { auth_url: authUrl };
    },
  });

  route(app, {
    method: 'POST', url: CALLBACK_PATH, operation: 'auth.oidc.login',
    // The code is a credential: not even a keyed hash of the body that carries it goes to the audit log.
    anonymous: true, secretBody: true,
    schema: { tags: ['auth'], summary: 'End an SSO login with the code and state the provider returned; returns a short-lived keyhold token (or, with session: true, sets the console\'s session cookie)', body: CallbackBody, response: withProviderErrors({ 200: OidcLoginView }), security: [] },
    handler: async (req, reply) => {
      const b = req.body;
      const result = await finish(req, { code: b.code, state: b.state, iss: b.iss });
      return loginView(result, b.session === true ? startSession(reply, result.token, result.expiresAt).csrf_token : undefined);
    },
  });

  route(app, {
    method: 'GET', url: CALLBACK_PATH, operation: 'auth.oidc.login-browser',
    // A GET that logs in: it gets the write-ahead audit record of a state-changing request, and
    // every answer counts toward the flood budget (its failures are redirects, not 4xx).
    anonymous: true, readOnly: false, floodCounted: true,
    schema: { tags: ['auth'], summary: 'The redirect URI for browsers: ends an SSO login, sets the session cookie, redirects (303) to /ui/ (or to /ui/#/login?error=CODE)', querystring: CallbackQuery, response: { 303: NoContent }, security: [] },
    handler: async (req, reply) => {
      // Fastify answers HEAD with this handler too; a HEAD (a link checker, a prefetch) must not spend the state or log anyone in.
      if (req.method !== 'GET') throw new KeyholdError('ERR_BAD_REQUEST', 'the SSO callback is a GET');
      const q = req.query;
      // Parsed on demand: there is no cookie-parsing hook on every request (session.ts).
      const binding = cookiesOf(req)[FLOW_COOKIE];
      void reply.clearCookie(FLOW_COOKIE, FLOW_COOKIE_OPTIONS);
      try {
        if (q.error !== undefined) {
          // The state is spent all the same (a flow ends once, whatever its outcome).
          if (q.state !== undefined) await oidc.discardFlow(q.state);
          req.keyhold.auditFields.provider_error = q.error.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
          throw new KeyholdError('ERR_OIDC_LOGIN_DENIED', 'the provider did not log the person in');
        }
        if (q.code === undefined || q.state === undefined) throw new KeyholdError('ERR_BAD_REQUEST', 'the callback needs code and state');
        const result = await finish(req, { code: q.code, state: q.state, iss: q.iss, browserBinding: binding ?? null });
        startSession(reply, result.token, result.expiresAt);
        return reply.redirect(UI_HOME, 303);
      } catch (err) {
        if (!(err instanceof KeyholdError) || err.code === 'ERR_AUDIT_UNAVAILABLE') throw err;
        // Recorded as the outcome's code (the audit hook reads it), and shown to the console.
        req.keyhold.errorCode = err.code;
        req.keyhold.auditFields.reason ??= err.message.slice(0, 512);
        return reply.redirect(uiLoginError(err.code), 303);
      }
    },
  });
};
