import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditActor, AuditRecord } from '../audit/entry.js';
import type { Runtime } from '../core/runtime.js';
import type { TokenRecord } from '../identity/tokens.js';
import { KeyholdError } from '../errors.js';
import { errorBody } from './errors.js';

/** Token records are cached objects, so their audit actor is computed once per token, not per request. */
const actors = new WeakMap<TokenRecord, AuditActor>();

function actorOf(request: FastifyRequest, runtime: Runtime): AuditActor | undefined {
  const token = request.keyhold?.token;
  if (!token) return undefined;
  let actor = actors.get(token);
  if (!actor) {
    actor = { tokenId: runtime.auditHmac.mac(token.id), policies: token.policies };
    actors.set(token, actor);
  }
  return actor;
}

function operationOf(request: FastifyRequest): string {
  return request.routeOptions.config?.operation ?? `${request.method} ${request.routeOptions.url ?? 'unknown'}`;
}

/**
 * Two records per request: one queued before the handler runs, one with the outcome that must be
 * durable (written and fdatasync'd) before the response leaves. If the log has failed, requests
 * are refused before they do anything; if it fails mid-request, the client gets 503 instead of the
 * result, so nothing is released without a durable record. Request bodies appear only as an HMAC.
 * Group commit makes one fdatasync serve every request in flight.
 */
export function installAudit(app: FastifyInstance, runtime: Runtime): void {
  const requestRecord = (request: FastifyRequest): AuditRecord => ({
    type: 'request',
    requestId: request.id,
    actor: actorOf(request, runtime),
    operation: operationOf(request),
    path: request.url.split('?')[0] ?? '',
  });
  // Requests whose request record was queued below. One refused before this hook (unauthenticated,
  // denied, invalid) gets its request record queued with its response record in onSend.
  const requestQueued = new WeakSet<FastifyRequest>();

  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config?.public) return;
    // Queued, not awaited: the log is FIFO, so the outcome record below cannot become durable
    // before this one. A log that already failed rejects here at once and the request is refused.
    const written = runtime.audit.append(requestRecord(request));
    requestQueued.add(request);
    if (!runtime.audit.healthy) await written;
    written.catch(() => undefined);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (request.routeOptions.config?.public) return payload;
    const fields: Record<string, string> = { ...(request.keyhold?.auditFields ?? {}) };
    if (request.body !== undefined && request.body !== null) fields.body = runtime.auditHmac.mac(JSON.stringify(request.body));
    const code = request.keyhold?.errorCode ?? undefined;
    try {
      // Appended in the same tick, a late request record and the response record take consecutive seqs.
      const pending = requestQueued.has(request) ? [] : [runtime.audit.append(requestRecord(request))];
      pending.push(runtime.audit.append({
        type: 'response',
        requestId: request.id,
        actor: actorOf(request, runtime),
        operation: operationOf(request),
        path: request.url.split('?')[0] ?? '',
        outcome: { status: reply.statusCode, ...(code ? { code } : {}) },
        fields,
      }));
      await Promise.all(pending);
      return payload;
    } catch (err) {
      request.log.error({ err }, 'audit write failed; response withheld');
      const { status, body } = errorBody(new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable'), request.id);
      reply.code(status).header('content-type', 'application/json; charset=utf-8');
      return JSON.stringify(body);
    }
  });
}
