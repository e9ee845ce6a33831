import type { FastifyReply, FastifyRequest } from 'fastify';
import { sha256Hex, type AuditActor, type AuditRecord } from '../audit/entry.js';
import type { RequestAuditScope } from '../audit/log.js';
import type { Runtime } from '../core/runtime.js';
import type { TokenRecord } from '../identity/tokens.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import { clientAddress } from './client-address.js';
import { RETRY_AFTER_SECONDS } from './error-status.js';
import { errorBody } from './errors.js';

/**
 * What an audit record says about a request (docs/design-notes.md, "Audit pipeline"):
 * - a state-changing route (every non-GET route unless its config says `readOnly`, logins
 *   included) first gets a `request` record (who, what, where, body HMAC), durable before its
 *   handler runs (`recordRequest`, called by the route guard in server.ts): nothing is committed
 *   that the log does not already name;
 * - every audited request then gets a `response` record with its outcome, durable before the
 *   response leaves (`auditRecorder`, from onSend): nothing is released without a record of it.
 *   A request refused before its handler (401, 403, 400) changed nothing and has only this one.
 * Both carry the same requestId. When the log has failed, requests are refused before they do
 * anything; when it fails mid-request, the client gets 503 instead of the result.
 */

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
 * How much of the path a request without a valid token gets in the log. Anyone can send those,
 * so their size must not be the sender's choice (a 15 KiB URL per request filled the disk); the
 * hash of the whole target (path and query) still identifies it. Authenticated requests keep the
 * full path: they are accountable, and Node bounds the request line (with the headers) to 16 KiB.
 */
export const UNAUTHENTICATED_PATH_CHARS = 128;

/**
 * The request target in origin form (`/v1/...`, query included). A client may send the absolute
 * form, `GET http://any.host/v1/secrets/x` (RFC 9112 §3.2.2): the router serves the path after
 * the authority, so the record must name that path, not text of the client's choosing before it
 * (a log search for `/v1/secrets/prod/` missed such a read). Mirrors find-my-way's parsing.
 */
function originForm(url: string): string {
  if (url.charCodeAt(0) === 0x2f) return url;
  const schemeEnd = url.indexOf('://');
  const scheme = schemeEnd < 0 ? '' : url.slice(0, schemeEnd).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return url;
  const pathStart = url.indexOf('/', schemeEnd + 3);
  const queryStart = url.indexOf('?', schemeEnd + 3);
  if (queryStart >= 0 && (pathStart < 0 || queryStart < pathStart)) return `/${url.slice(queryStart)}`;
  return pathStart < 0 ? '/' : url.slice(pathStart);
}

/** The path to record, and for requests without a valid token the sha256 of the whole request target. */
export function auditedPath(request: FastifyRequest): { path: string; hash?: string } {
  const url = request.url;
  const target = originForm(url);
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  if (request.keyhold?.token) return { path };
  return { path: path.length > UNAUTHENTICATED_PATH_CHARS ? path.slice(0, UNAUTHENTICATED_PATH_CHARS) : path, hash: sha256Hex(url) };
}

/**
 * The facts every record of a request carries: where it came from (the client resolved through
 * trusted proxies, and the proxy it arrived from when that is another address), the route's own
 * fields, and for requests without a valid token the hash of the whole target.
 */
function baseFields(request: FastifyRequest, runtime: Runtime, hash: string | undefined, withBody: boolean): Record<string, string> {
  const { client, peer } = clientAddress(request);
  const fields: Record<string, string> = { ...request.keyhold.auditFields, client_address: client };
  if (peer !== client) fields.peer_address = peer;
  if (hash !== undefined) fields.path_sha256 = hash;
  if (withBody && request.keyhold.rawBody) fields.body = runtime.auditHmac.mac(request.keyhold.rawBody);
  return fields;
}

/**
 * On a log that records requests with their writes (PostgreSQL): the request's scope, whose record
 * the request's first write commits (or its outcome record, if it wrote nothing).
 */
const scopes = new WeakMap<FastifyRequest, RequestAuditScope>();

/** Runs the handler of a state-changing request in its audit scope, if it has one (PostgreSQL). */
export function runAudited<T>(runtime: Runtime, request: FastifyRequest, handler: () => T): T {
  const scope = scopes.get(request);
  return scope === undefined || runtime.audit.recordsWithWrites === undefined ? handler() : runtime.audit.recordsWithWrites.run(scope, handler);
}

/**
 * The write-ahead record of a state-changing request, after authorisation and before its handler:
 * resolves once it is durable; rejects with ERR_AUDIT_UNAVAILABLE (the handler must then not run).
 * On a log that records requests with their writes, it is not written now: it goes into the
 * transaction of the request's first write (see runAudited).
 */
export function requestRecorder(runtime: Runtime): (request: FastifyRequest) => Promise<void> {
  return (request) => {
    const { path, hash } = auditedPath(request);
    const record: AuditRecord = {
      type: 'request',
      requestId: request.id,
      actor: actorOf(request, runtime),
      operation: operationOf(request),
      path,
      fields: baseFields(request, runtime, hash, true),
    };
    if (runtime.audit.recordsWithWrites !== undefined) {
      scopes.set(request, { request: record, recorded: false });
      request.keyhold.requestRecorded = true;
      return Promise.resolve();
    }
    return runtime.audit.append(record).then(() => {
      request.keyhold.requestRecorded = true;
    }, (err: unknown) => {
      request.log.error({ reqId: request.id, err }, 'audit write failed; request refused before its handler');
      throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable; request refused', { cause: err });
    });
  };
}

export type OnSendDone = (err: Error | null, payload?: unknown) => void;

/**
 * The outcome record of every audited request, from onSend. Requests refused by the flood limit
 * (ERR_RATE_LIMITED) have none of their own: flood-limit.ts records them in aggregate.
 */
export function auditRecorder(runtime: Runtime): (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone) => void {
  return (request, reply, payload, done) => {
    const state = request.keyhold;
    if (!state || state.route.public || state.errorCode === 'ERR_RATE_LIMITED') {
      done(null, payload);
      return;
    }
    const { path, hash } = auditedPath(request);
    const code = state.errorCode ?? undefined;
    runtime.audit.append({
      type: 'response',
      requestId: request.id,
      actor: actorOf(request, runtime),
      operation: operationOf(request),
      path,
      outcome: { status: reply.statusCode, ...(code ? { code } : {}) },
      // The body's HMAC is in the request record when there is one.
      fields: baseFields(request, runtime, hash, !state.requestRecorded),
    }, scopes.get(request)).then(() => done(null, payload), (err: unknown) => {
      request.log.error({ reqId: request.id, err }, 'audit write failed; response withheld');
      // A log in a database that is away says so (503 and when to retry), like the write would have.
      const unavailable = isKeyholdError(err, 'ERR_STORAGE_UNAVAILABLE');
      if (unavailable) void reply.header('retry-after', String(RETRY_AFTER_SECONDS.ERR_STORAGE_UNAVAILABLE));
      const { status, body } = errorBody(unavailable ? err : new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable'), request.id);
      reply.code(status).header('content-type', 'application/json; charset=utf-8');
      done(null, JSON.stringify(body));
    });
  };
}
