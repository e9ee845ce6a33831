import type { FastifyRequest } from 'fastify';
import type { Runtime } from '../core/runtime.js';
import { KeyholdError } from '../errors.js';

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (!header) throw new KeyholdError('ERR_UNAUTHENTICATED', 'missing Authorization: Bearer <token>');
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new KeyholdError('ERR_UNAUTHENTICATED', 'Authorization header must be "Bearer <token>"');
  return match[1] as string;
}

/**
 * Runs on every non-public request before its body is parsed. A token whose policies grant
 * nothing at all is refused at once, whatever the request looks like. Cache hits stay synchronous:
 * this runs on every request.
 */
export async function authenticate(request: FastifyRequest, runtime: Runtime): Promise<void> {
  const token = bearerToken(request);
  const record = runtime.tokens.cached(token) ?? (await runtime.tokens.lookup(token));
  request.keyhold.token = record;
  if (record.policies.length === 0) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied: the token has no policies');
  request.keyhold.policies = runtime.policies.cachedFor(record.policies) ?? (await runtime.policies.compiledFor(record.policies));
}

/** Runs after validation, when params and body are known: every (path, capability) the route names must be granted. */
export async function authorize(request: FastifyRequest): Promise<void> {
  // No route matched (the caller is authenticated): let the not-found handler answer 404 ERR_NOT_FOUND.
  if (request.is404) return;
  const { route, policies } = request.keyhold;
  if (!policies) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
  if (!route.authorize) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied');
  for (const [path, capability] of await route.authorize(request)) {
    if (!policies.allowed(path, capability)) {
      throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: ${capability} on ${path}`);
    }
  }
}
