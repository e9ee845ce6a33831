/**
 * Browser sessions for the web console. A person's keyhold token is kept in an HttpOnly, Secure,
 * SameSite=Strict cookie (never readable by the page's JavaScript, never in local storage), and
 * every state-changing call made with that cookie must carry the CSRF token handed out here
 * (@fastify/csrf-protection: a secret in its own cookie, the token derived from it). Bearer
 * tokens in an Authorization header are unaffected: a cookie is only consulted without one.
 */
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const SESSION_COOKIE = 'keyhold_session';
export const CSRF_HEADER = 'x-csrf-token';

const COOKIE_OPTIONS = { httpOnly: true, secure: true, sameSite: 'strict', path: '/' } as const;

/** Registers the cookie and CSRF plugins the session needs (server.ts, before the routes). */
export async function installSessions(app: FastifyInstance): Promise<void> {
  await app.register(cookie);
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'keyhold_csrf',
    cookieOpts: COOKIE_OPTIONS,
    getToken: (request) => {
      const value = request.headers[CSRF_HEADER];
      return typeof value === 'string' ? value : undefined;
    },
  });
}

/**
 * Puts `token` in the session cookie (expiring with the token) and answers the CSRF token the page
 * sends back on every state-changing call. A login route calls it when its body asks for a session.
 */
export function startSession(reply: FastifyReply, token: string, expiresAt: string): { csrf_token: string } {
  reply.setCookie(SESSION_COOKIE, token, { ...COOKIE_OPTIONS, expires: new Date(expiresAt) });
  return { csrf_token: reply.generateCsrf() };
}

/** Clears the session cookie (logout; the token itself is revoked by the caller). */
export function endSession(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
}
