import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/entry.js';
import type { Runtime } from '../core/runtime.js';
import { KeyholdError } from '../errors.js';
import { errorBody } from './errors.js';

function actorOf(request: FastifyRequest, runtime: Runtime): AuditActor | undefined {
  const token = request.keyhold?.token;
  if (!token) return undefined;
  return { tokenId: runtime.auditHmac.mac(token.id), policies: token.policies };
}

function operationOf(request: FastifyRequest): string {
  return request.routeOptions.config?.operation ?? `${request.method} ${request.routeOptions.url ?? 'unknown'}`;
}

/**
 * Two records per request, Vault-style: one before the handler runs (if it cannot be written, the
 * request is refused and nothing happens) and one with the outcome before the response leaves (if
 * that cannot be written, the client gets 503 instead of the result). Request bodies appear only
 * as an HMAC. Group commit in the log makes the two fsyncs cheap under load.
 */
export function installAudit(app: FastifyInstance, runtime: Runtime): void {
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config?.public) return;
    await runtime.audit.append({
      type: 'request',
      requestId: request.id,
      actor: actorOf(request, runtime),
      operation: operationOf(request),
      path: request.url.split('?')[0] ?? '',
    });
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (request.routeOptions.config?.public) return payload;
    const fields: Record<string, string> = { ...(request.keyhold?.auditFields ?? {}) };
    if (request.body !== undefined && request.body !== null) fields.body = runtime.auditHmac.mac(JSON.stringify(request.body));
    const code = request.keyhold?.errorCode ?? undefined;
    try {
      await runtime.audit.append({
        type: 'response',
        requestId: request.id,
        actor: actorOf(request, runtime),
        operation: operationOf(request),
        path: request.url.split('?')[0] ?? '',
        outcome: { status: reply.statusCode, ...(code ? { code } : {}) },
        fields,
      });
      return payload;
    } catch (err) {
      request.log.error({ err }, 'audit write failed; response withheld');
      const { status, body } = errorBody(new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable'), request.id);
      reply.code(status).header('content-type', 'application/json; charset=utf-8');
      return JSON.stringify(body);
    }
  });
}
