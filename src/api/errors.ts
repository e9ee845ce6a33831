import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KeyholdError, type KeyholdErrorCode } from '../errors.js';
import { HTTP_STATUS, publicMessage } from './error-status.js';

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
 * Router-level failures (undecodable URL such as `%ZZ`, a path parameter over maxParamLength) never
 * reach the error handler; Fastify's `frameworkErrors` option routes them here so they get the same
 * `{ error: { code, message } }` body as every other refusal.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = errorBody(toKeyholdError(err), request.id);
  // The onSend hook that sets this header does not run for framework errors.
  void reply.code(status).header('x-request-id', request.id).send(body);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    const mapped = toKeyholdError(err);
    const { status, body } = errorBody(mapped, request.id);
    if (request.keyhold) request.keyhold.errorCode = mapped.code;
    if (status >= 500) request.log.error({ reqId: request.id, err: mapped, cause: mapped.cause }, 'request failed');
    else request.log.debug({ reqId: request.id, code: mapped.code }, 'request refused');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorBody(new KeyholdError('ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), request.id);
    return reply.code(status).send(body);
  });
}
