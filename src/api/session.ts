/**
 * Browser sessions for the web console. A person's keyhold token is kept in an HttpOnly, Secure,
 * SameSite=Strict cookie (never readable by the page's JavaScript, never in local storage), and
 * every state-changing call made with that cookie must carry the CSRF token handed out here
 * (@fastify/csrf-protection: the token derived from a secret that is derived from the session token). Bearer
 * tokens in an Authorization header are unaffected: a cookie is only consulted without one.
 */
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KeyholdError } from '../errors.js';

export const SESSION_COOKIE = 'keyhold_session';
export const CSRF_COOKIE = 'keyhold_csrf';
export const CSRF_HEADER = 'x-csrf-token';

const COOKIE_OPTIONS = { httpOnly: true, secure: true, sameSite: 'strict', path: '/' } as const;

/** Registers the cookie and CSRF plugins the session needs (server.ts, before the routes). */
export async function installSessions(app: FastifyInstance): Promise<void> {
  // hook: false: no cookie parsing hook on every request. Bearer requests (the benchmarked path)
  // never look at cookies; sessionToken() parses them only for a request without Authorization.
  await app.register(cookie, { hook: false });
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: CSRF_COOKIE,
    cookieOpts: COOKIE_OPTIONS,
    getToken: (request) => {
      const value = request.headers[CSRF_HEADER];
      return typeof value === 'string' ? value : undefined;
    },
  });
}

/**
 * The request's cookies, parsed on first use: the cookie plugin's own hook is off (see above), so
 * `request.cookies` is null until this (or a reply.setCookie) runs. Routes read cookies through it.
 */
export function cookiesOf(request: FastifyRequest): Record<string, string | undefined> {
  if (!request.cookies) {
    const header = request.headers.cookie;
    request.cookies = header ? request.server.parseCookie(header) : {};
  }
  return request.cookies;
}

/**
 * The CSRF secret of a session: derived from its token, never taken from a cookie. A separate
 * secret cookie left the CSRF token unbound to the session: whoever could set a cookie for the
 * site (a sibling subdomain is same-site, so SameSite=Strict does not stop it) planted the secret
 * of their own session beside the victim's session cookie and sent the token they knew. Derived,
 * a CSRF token is valid with its own session cookie only (and nothing is stored for it).
 */
function bindCsrfSecret(request: FastifyRequest, sessionToken: string): void {
  cookiesOf(request)[CSRF_COOKIE] = createHash('sha256').update('keyhold-csrf\0').update(sessionToken).digest('base64url');
}

/** A refusal that never reaches the client: csrfProtection answers through it, and we throw our own error instead. */
interface CsrfVerdict { refused: boolean }
const verdictReply = (verdict: CsrfVerdict) => ({ send: () => { verdict.refused = true; } }) as unknown as FastifyReply;
const noop = () => {};

/**
 * The session token of a request that has no Authorization header, or ERR_UNAUTHENTICATED. A
 * state-changing request (any method but GET/HEAD) must also carry a valid CSRF token: a
 * cross-site page can make the browser send the cookie, but cannot read the token (ERR_CSRF).
 */
export function sessionToken(request: FastifyRequest): string {
  const token = cookiesOf(request)[SESSION_COOKIE];
  if (!token) throw new KeyholdError('ERR_UNAUTHENTICATED', 'missing Authorization: Bearer <token> (or a console session)');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    const verdict: CsrfVerdict = { refused: false };
    bindCsrfSecret(request, token);
    // @fastify/csrf-protection's check is synchronous: it calls next() or reply.send(error).
    request.server.csrfProtection(request, verdictReply(verdict), noop);
    if (verdict.refused) throw new KeyholdError('ERR_CSRF', 'a state-changing call with the session cookie needs a valid x-csrf-token header');
  }
  return token;
}

/** True when the request was authenticated by the session cookie (no Authorization header). */
export function bySession(request: FastifyRequest): boolean {
  return request.headers.authorization === undefined && cookiesOf(request)[SESSION_COOKIE] !== undefined;
}

/**
 * Puts `token` in the session cookie (expiring with the token) and answers the CSRF token the page
 * sends back on every state-changing call. A login route calls it when its body asks for a session.
 * A new session gets a new CSRF secret: none planted before the login carries over.
 */
export function startSession(reply: FastifyReply, token: string, expiresAt: string): { csrf_token: string } {
  reply.setCookie(SESSION_COOKIE, token, { ...COOKIE_OPTIONS, expires: new Date(expiresAt) });
  // The secret is the new session's (derived from its token): no cookie of the request's carries over.
  bindCsrfSecret(reply.request, token);
  return { csrf_token: reply.generateCsrf() };
}

/** A fresh CSRF token for the current session (same secret; GET /v1/auth/session after a reload). */
export function csrfToken(reply: FastifyReply): string {
  const token = cookiesOf(reply.request)[SESSION_COOKIE];
  if (!token) throw new KeyholdError('ERR_UNAUTHENTICATED', 'no console session');
  bindCsrfSecret(reply.request, token);
  return reply.generateCsrf();
}

/** Clears the session cookie, and any CSRF secret cookie an older version set (logout; the token itself is revoked by the caller). */
export function endSession(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
  reply.clearCookie(CSRF_COOKIE, COOKIE_OPTIONS);
}
