import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Runtime } from '../core/runtime.js';
import { authenticate, authorize, settle } from './auth.js';
import { auditRecorder } from './audit-hooks.js';
import { auditRoutes } from './routes/audit.js';
import { KeyholdError } from '../errors.js';
import { routeInfo } from './context.js';
import { frameworkErrors, installErrorHandling } from './errors.js';
import { installMetrics } from './metrics.js';
import { keyRoutes } from './routes/keys.js';
import { kubernetesAuthRoutes } from './routes/auth-kubernetes.js';
import { secretRoutes } from './routes/secrets.js';
import { sysRoutes, VERSION } from './routes/sys.js';

export interface ApiOptions {
  logLevel?: string;
  /** Where structured logs go (default stdout). */
  logStream?: NodeJS.WritableStream;
}

/**
 * The HTTP API. Per request: onRequest (state, authenticate) → validation → the route's handler,
 * wrapped at registration (audit log healthy? authorise) → onSend (metrics, then the audit record
 * with the outcome, durable before the response leaves).
 */
export async function buildApi(runtime: Runtime, options: ApiOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: runtime.config.api?.bodyLimitBytes ?? 1024 * 1024,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
    // Key names are up to 128 characters (KEY_NAME_PATTERN); Fastify's default of 100 made longer ones unaddressable.
    routerOptions: { maxParamLength: 128 },
    frameworkErrors,
    // The audit log is the per-request record; duplicating it in the app log costs throughput and risks leaking.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (a measurable cost on every request): the few places that log
    // add the request id themselves.
    childLoggerFactory: (logger) => logger,
    ajv: {
      // Unknown fields are rejected, never dropped; "123" is not a number.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    logger: {
      level: options.logLevel ?? runtime.config.log?.level ?? 'info',
      ...(options.logStream ? { stream: options.logStream } : {}),
      // Only method, route and id: never headers (tokens), bodies or query values.
      serializers: {
        req: (req) => ({ method: req.method, url: req.routeOptions?.url ?? 'unmatched', id: req.id }),
        res: (res) => ({ statusCode: res.statusCode }),
      },
      redact: ['req.headers.authorization', 'headers.authorization'],
    },
  });
  app.decorateRequest('keyhold', null as never);
  // One hook per stage, callback style: an async hook costs a promise chain on every request,
  // which measured more than the authentication it wraps.
  app.addHook('onRequest', (request, reply, done) => {
    request.keyhold = { route: routeInfo(request), token: null, policies: null, errorCode: null, rawBody: null, auditFields: {} };
    reply.header('x-request-id', request.id);
    if (request.keyhold.route.public || request.keyhold.route.anonymous) done();
    else settle(() => authenticate(request, runtime), done);
  });
  // Authorisation runs inside each route's handler (wrapped once, at registration): after
  // validation, when params and body are known, without a hook of its own.
  app.addHook('onRoute', (route) => {
    if ((route.config as { public?: boolean } | undefined)?.public) return;
    const handler = route.handler;
    route.handler = function guarded(this: FastifyInstance, request, reply) {
      if (!runtime.audit.healthy) throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable; request refused');
      if ((route.config as { anonymous?: boolean } | undefined)?.anonymous) return handler.call(this, request, reply);
      const authorized = authorize(request);
      if (authorized instanceof Promise) return authorized.then(() => handler.call(this, request, reply));
      return handler.call(this, request, reply);
    };
  });

  // The default JSON parser (prototype-poisoning checks included), keeping the raw text so the
  // audit record can carry its HMAC without serialising the body again.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (request.keyhold) request.keyhold.rawBody = body as string;
    parseJson(request, body as string, done);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'keyhold', version: VERSION, description: 'HSM-rooted key management and secret delivery' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  installErrorHandling(app);
  const observe = installMetrics(app, runtime);
  const record = auditRecorder(runtime);
  // The one hook after the handler: metrics for every response, the audit record for every audited one.
  app.addHook('onSend', (request, reply, payload, done) => {
    observe(request, reply);
    record(request, reply, payload, done);
  });

  sysRoutes(app, runtime);
  auditRoutes(app, runtime);
  keyRoutes(app, runtime);
  secretRoutes(app, runtime);
  kubernetesAuthRoutes(app, runtime);
  app.get('/v1/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
