import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/entry.js';
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
    actor = { ...(token.accessor ? { accessor: token.accessor } : {}), tokenId: runtime.auditHmac.mac(token.id), policies: token.policies, ...(token.selectors ? { selectors: token.selectors } : {}) };
    actors.set(token, actor);
  }
  return actor;
}

function operationOf(request: FastifyRequest): string {
  return request.keyhold?.route.operation ?? 'unmatched';
}

/**
 * One record per request, with its outcome, written and fdatasync'd before the response leaves:
 * nothing is released (a plaintext, a secret, a token) without a durable record of it. When the
 * log has failed, requests are refused before they do anything (server.ts, the route guard); when it
 * fails mid-request, the client gets 503 instead of the result. Request bodies appear only as an HMAC. Group commit lets
 * one fdatasync serve every request in flight.
 */
export type OnSendDone = (err: Error | null, payload?: unknown) => void;

export function auditRecorder(runtime: Runtime): (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone) => void {
  return (request, reply, payload, done) => {
    if (!request.keyhold || request.keyhold.route.public) {
      done(null, payload);
      return;
    }
    const fields: Record<string, string> = { ...request.keyhold.auditFields };
    if (request.keyhold.rawBody) fields.body = runtime.auditHmac.mac(request.keyhold.rawBody);
    const code = request.keyhold.errorCode ?? undefined;
    runtime.audit.append({
      type: 'request',
      requestId: request.id,
      actor: actorOf(request, runtime),
      operation: operationOf(request),
      path: request.url.split('?')[0] ?? '',
      outcome: { status: reply.statusCode, ...(code ? { code } : {}) },
      fields,
    }).then(() => done(null, payload), (err: unknown) => {
      request.log.error({ reqId: request.id, err }, 'audit write failed; response withheld');
      const { status, body } = errorBody(new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable'), request.id);
      reply.code(status).header('content-type', 'application/json; charset=utf-8');
      done(null, JSON.stringify(body));
    });
  };
}
