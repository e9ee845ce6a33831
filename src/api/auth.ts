import type { FastifyInstance, FastifyRequest } from 'fastify';
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
 * Authentication runs on every non-public request before its body is parsed; authorisation runs
 * after validation, when params and body are known. A token whose policies grant nothing at all is
 * refused at once, whatever the request looks like.
 */
export function installAuth(app: FastifyInstance, runtime: Runtime): void {
  app.addHook('onRequest', async (request) => {
    request.keyhold = { token: null, policies: null, errorCode: null, auditFields: {} };
    if (request.routeOptions.config?.public) return;
    const record = await runtime.tokens.lookup(bearerToken(request));
    request.keyhold.token = record;
    if (record.policies.length === 0) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied: the token has no policies');
    request.keyhold.policies = await runtime.policies.compiledFor(record.policies);
  });

  app.addHook('preHandler', async (request) => {
    const config = request.routeOptions.config;
    if (config?.public) return;
    // No route matched (the caller is authenticated): let the not-found handler answer 404 ERR_NOT_FOUND.
    if (request.is404) return;
    const policies = request.keyhold.policies;
    if (!policies) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
    if (!config?.authorize) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied');
    for (const [path, capability] of await config.authorize(request)) {
      if (!policies.allowed(path, capability)) {
        throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: ${capability} on ${path}`);
      }
    }
  });
}
