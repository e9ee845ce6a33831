import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { apiTimeouts } from '../core/config.js';
import type { Runtime } from '../core/runtime.js';
import { authenticate, authorize, settle } from './auth.js';
import { auditRecorder, requestRecorder, runAudited } from './audit-hooks.js';
import { auditApi } from './routes/audit.js';
import { auditViewApi } from './routes/audit-view.js';
import { installConsole } from './console.js';
import { sessionApi } from './routes/session.js';
import { approvalGate } from './approval-gate.js';
import { approvalsApi } from './routes/approvals.js';
import { KeyholdError } from '../errors.js';
import { routeInfo } from './context.js';
import { clientErrors, frameworkErrors, installErrorHandling } from './errors.js';
import { installFloodLimit } from './flood-limit.js';
import { jsonBodyParser } from './json-body.js';
import { installMetrics } from './metrics.js';
import { keysApi } from './routes/keys.js';
import { kubernetesAuthApi } from './routes/auth-kubernetes.js';
import { oidcAuthApi } from './routes/auth-oidc.js';
import { secretsApi } from './routes/secrets.js';
import { policiesApi } from './routes/policies.js';
import { sealApi } from './routes/seal.js';
import { installSessions } from './session.js';
import { sysApi, VERSION } from './routes/sys.js';
import { tokensApi } from './routes/tokens.js';
import { MOUNTS } from '../barrier/mounts.js';
import type { PostgresStorage } from '../storage/postgres.js';
import { OperatorLogins } from '../operators/login.js';
import { operatorAuthApi } from './routes/auth-operator.js';
import { operatorsApi } from './routes/operators.js';
import { groupsApi } from './routes/groups.js';
import { capabilitiesApi } from './routes/capabilities.js';

export interface ApiOptions {
  logLevel?: string;
  /** Where structured logs go (default stdout). */
  logStream?: NodeJS.WritableStream;
}

/**
 * The HTTP API. Per request: onRequest (state, authenticate: a failure is counted by the flood
 * limit; a login is admitted by it instead) → validation → the route's handler, wrapped at
 * registration (audit log healthy? authorise; for a state-changing route the write-ahead request
 * record, durable before the handler runs) → onSend (metrics, then the response record with the
 * outcome, durable before the response leaves).
 */
export async function buildApi(runtime: Runtime, options: ApiOptions = {}): Promise<FastifyInstance> {
  const timeouts = apiTimeouts(runtime.config);
  const trustedProxies = runtime.config.api?.trustedProxies ?? [];
  const app = Fastify({
    // Slow clients: headers and the whole request (body included) must arrive in time, or the
    // connection is closed with a 408 (clientErrors). Node checks these every
    // connectionsCheckingInterval (default 30 s), so that runs at a fraction of the shorter one.
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    http: {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeouts.headersTimeoutMs / 4))),
    },
    clientErrorHandler: clientErrors,
    // Whose X-Forwarded-For is believed (api.trustedProxies, checked at load; client-address.ts):
    // nobody unless configured, so a client cannot choose the address it is limited and audited under.
    trustProxy: trustedProxies.length > 0 ? [...trustedProxies] : false,
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
  const flood = await installFloodLimit(app, runtime);
  // One hook per stage, callback style: an async hook costs a promise chain on every request,
  // which measured more than the authentication it wraps.
  app.addHook('onRequest', (request, reply, done) => {
    request.keyhold = {
      route: routeInfo(request), token: null, policies: null, errorCode: null, rawBody: null, auditFields: {}, requestRecorded: false, floodKey: null, client: null,
    };
    reply.header('x-request-id', request.id);
    if (request.keyhold.route.public) {
      done();
      return;
    }
    // Every answer past here may carry a token, a secret, a TOTP secret, recovery codes or a CSRF
    // token: never kept by a browser's cache (the console's cookie reads too) or a proxy.
    reply.header('cache-control', 'no-store');
    // A login: before its body is even parsed, so a malformed one counts and is limited too.
    if (request.keyhold.route.anonymous) flood.admit(request, reply).then(() => done(), done);
    else {
      settle(() => authenticate(request, runtime), (err) => {
        if (err === undefined) done();
        else void flood.authenticationFailed(request, reply, err).then(done, done);
      });
    }
  });
  // The web console's static files (public routes: the guard below leaves them alone; console.ts).
  await installConsole(app, { enabled: runtime.config.ui?.enabled !== false, warn: (m) => app.log.warn(m) });
  const recordRequest = requestRecorder(runtime);
  // Quorum approval (src/approvals/): `protects` is a set look-up, so an unprotected operation pays
  // nothing more; a protected one opens an approval request (202) instead of running.
  const { approvals } = runtime;
  const gate = approvalGate(approvals);
  // Authorisation runs inside each route's handler (wrapped once, at registration): after
  // validation, when params and body are known, without a hook of its own. So does the
  // write-ahead request record of a state-changing route: after authorisation (a refused request
  // changed nothing, its outcome record is enough), before the handler can commit anything.
  app.addHook('onRoute', (route) => {
    if ((route.config as { public?: boolean } | undefined)?.public) return;
    const handler = route.handler;
    route.handler = function guarded(this: FastifyInstance, request, reply) {
      if (!runtime.audit.healthy) throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'audit log unavailable; request refused');
      const info = request.keyhold.route;
      // Logins were admitted by the flood limit in onRequest.
      const admitted = info.anonymous ? undefined : authorize(request);
      if (info.readOnly) {
        if (admitted instanceof Promise) return admitted.then(() => handler.call(this, request, reply));
        return handler.call(this, request, reply);
      }
      const recorded = admitted instanceof Promise ? admitted.then(() => recordRequest(request)) : recordRequest(request);
      return recorded.then(() => runAudited(runtime, request, () => (approvals.protects(info.operation)
        ? gate(request, reply, () => handler.call(this, request, reply))
        : handler.call(this, request, reply))));
    };
  });

  // The default JSON parser (prototype-poisoning checks included) behind keyhold's checks of
  // charset, UTF-8 and depth (json-body.ts), which also keeps the text for the audit record.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // Every keyhold body is JSON: text/plain (fastify's other default parser) is refused with 415 too.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, jsonBodyParser(parseJson));

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'keyhold', version: VERSION, description: 'HSM-rooted key management and secret delivery' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  installErrorHandling(app);
  await installSessions(app);
  const observe = installMetrics(app, runtime);
  const record = auditRecorder(runtime);
  // The one hook after the handler: metrics for every response, the audit record for every audited one.
  app.addHook('onSend', (request, reply, payload, done) => {
    observe(request, reply);
    if (request.keyhold?.route.anonymous) flood.settled(request, reply);
    record(request, reply, payload, done);
  });

  await app.register(sysApi, {
    hsm: runtime.hsm, barrier: runtime.barrier, audit: runtime.audit, kubernetesAuth: runtime.kubernetesAuth, leadership: runtime.leadership, jobs: runtime.jobs, rootRotation: runtime.rootRotation, startedAt: runtime.startedAt,
  });
  await app.register(sealApi, { rootRotation: runtime.rootRotation });
  await app.register(policiesApi, { policies: runtime.policies });
  await app.register(tokensApi, { tokens: runtime.tokens });
  await app.register(auditApi, { audit: runtime.audit, signer: runtime.auditSigner });
  // On PostgreSQL the audit log is the store's `audit` table, one chain per replica: the views read it there.
  const auditTable = runtime.config.storage.postgres && runtime.newSessionClient
    ? { pool: (runtime.storage as PostgresStorage).pool, newClient: runtime.newSessionClient, ...(runtime.config.audit.verifyTimeoutSeconds !== undefined ? { verifyTimeoutSeconds: runtime.config.audit.verifyTimeoutSeconds } : {}) }
    : undefined;
  await app.register(auditViewApi, {
    path: runtime.config.storage.postgres ? undefined : runtime.config.audit.path, ...(auditTable ? { table: auditTable } : {}),
    publicKeyPem: runtime.auditSigner.publicKeyPem, audit: runtime.audit,
  });
  await app.register(sessionApi, {
    tokens: runtime.tokens, sessionTtlSeconds: runtime.config.ui?.sessionTtlSeconds ?? 3600,
    oidcConfigured: () => runtime.oidcAuth.describeConfig().then(() => true, () => false),
  });
  await app.register(keysApi, { keys: runtime.keys });
  await app.register(secretsApi, { secrets: runtime.secrets });
  await app.register(approvalsApi, { approvals: runtime.approvals, sweep: runtime.approvalSweep });
  await app.register(kubernetesAuthApi, { kubernetesAuth: runtime.kubernetesAuth, policies: runtime.policies, auditHmac: runtime.auditHmac });
  // People (issue 12): operator accounts, their logins, groups, and "what can I do".
  const operatorConfig = runtime.config.operators;
  const logins = new OperatorLogins(runtime.operators, runtime.groups, runtime.tokens, runtime.barrier.view(MOUNTS.operatorTokens), {
    ...(operatorConfig?.tokenTtlSeconds !== undefined ? { tokenTtlSeconds: operatorConfig.tokenTtlSeconds } : {}),
    ...(operatorConfig?.lockout?.address ? { addressLockout: operatorConfig.lockout.address } : {}),
  });
  await app.register(operatorAuthApi, { operators: runtime.operators, logins, auditHmac: runtime.auditHmac });
  await app.register(operatorsApi, { operators: runtime.operators, logins, groups: runtime.groups, policies: runtime.policies });
  await app.register(groupsApi, { groups: runtime.groups, policies: runtime.policies });
  await app.register(capabilitiesApi, {});
  await app.register(oidcAuthApi, { oidcAuth: runtime.oidcAuth, auditHmac: runtime.auditHmac });
  app.get('/v1/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
