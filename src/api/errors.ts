import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KeyholdError, type KeyholdErrorCode } from '../errors.js';
import { HTTP_STATUS, RETRY_AFTER_SECONDS, publicMessage } from './error-status.js';

export interface ErrorBody {
  error: { code: KeyholdErrorCode; message: string };
  request_id: string;
}

/** Fastify's own failures (bad JSON, schema mismatch, size) become KeyholdErrors here, before mapping. */
function toKeyholdError(err: FastifyError | KeyholdError | Error): KeyholdError {
  if (err instanceof KeyholdError) return err;
  const fe = err as FastifyError;
  if (fe.validation) return new KeyholdError('ERR_BAD_REQUEST', `invalid request: ${fe.message}`);
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new KeyholdError('ERR_PAYLOAD_TOO_LARGE', 'request body is too large');
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new KeyholdError('ERR_UNSUPPORTED_MEDIA_TYPE', 'request bodies must be application/json');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new KeyholdError('ERR_BAD_REQUEST', fe.message || 'bad request');
  }
  return new KeyholdError('ERR_INTERNAL', 'internal error', { cause: err });
}

export function errorBody(err: KeyholdError, requestId: string): { status: number; body: ErrorBody } {
  const status = HTTP_STATUS[err.code] ?? 500;
  return { status, body: { error: { code: err.code, message: publicMessage(err.code, err.message) }, request_id: requestId } };
}

/**
 * A refusal sent before the request body was read (no or a bad token, an unsupported media type,
 * a declared length over the limit) closes the connection once it has been sent. Otherwise Node
 * keeps reading, and discarding, whatever the client still sends to reuse the connection: a client
 * trickling a body held the socket open long after its 401. Costs nothing on the success path.
 */
function closeIfBodyPending(request: FastifyRequest, reply: FastifyReply): void {
  if (!request.raw.complete) void reply.header('connection', 'close');
}

/**
 * Failures Node reports before there is a request to answer (a slow client's headers or body
 * timing out, headers over the size limit, unparsable HTTP): answered in keyhold's error shape,
 * then the socket is destroyed. Replaces fastify's default, which has its own body shape.
 */
export function clientErrors(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? new KeyholdError('ERR_REQUEST_TIMEOUT', 'the request was not received in time; connection closed')
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? new KeyholdError('ERR_HEADERS_TOO_LARGE', 'request headers are too large')
      : new KeyholdError('ERR_BAD_REQUEST', 'malformed HTTP request');
  const { status, body } = errorBody(error, randomUUID());
  const text = JSON.stringify(body);
  // Only when nothing of a response has gone out on this socket yet: never corrupt one in flight.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\nx-request-id: ${body.request_id}\r\n\r\n${text}`);
  }
  socket.destroy();
}

/**
 * Router-level failures (undecodable URL such as `%ZZ`, a path parameter over maxParamLength) never
 * reach the error handler; Fastify's `frameworkErrors` option routes them here so they get the same
 * `{ error: { code, message } }` body as every other refusal.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = errorBody(toKeyholdError(err), request.id);
  // The onSend hook that sets this header does not run for framework errors.
  closeIfBodyPending(request, reply);
  void reply.code(status).header('x-request-id', request.id).send(body);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    const mapped = toKeyholdError(err);
    const { status, body } = errorBody(mapped, request.id);
    if (request.keyhold) request.keyhold.errorCode = mapped.code;
    if (status >= 500) request.log.error({ reqId: request.id, err: mapped, cause: mapped.cause }, 'request failed');
    else request.log.debug({ reqId: request.id, code: mapped.code }, 'request refused');
    // A refusal that knows when it passes (a locked account) says so; otherwise the code's fixed hint.
    const retryAfter = typeof mapped.details?.retryAfterSeconds === 'number' ? mapped.details.retryAfterSeconds : RETRY_AFTER_SECONDS[mapped.code];
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    closeIfBodyPending(request, reply);
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorBody(new KeyholdError('ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), request.id);
    closeIfBodyPending(request, reply);
    return reply.code(status).send(body);
  });
}
