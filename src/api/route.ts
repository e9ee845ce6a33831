/**
 * How an API area declares its routes. Each area (routes/*.ts) is an encapsulated fastify plugin
 * given only the services it uses (docs/design-notes.md, "API plugins"); `route` types a route's
 * request (params, querystring, body) and reply from its TypeBox schemas, for the handler and for
 * the authoriser alike, so no route casts `req.params` or `req.body` by hand.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import type {
  FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyRequest, FastifySchema, FastifyTypeProvider,
  RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault, RouteGenericInterface, RouteHandlerMethod,
} from 'fastify';
import type { Authorizer, Requirement } from './context.js';
import { NoContent, withErrors } from './schemas.js';

/** Fastify's type provider for TypeBox (what @fastify/type-provider-typebox exports, without the dependency). */
export interface TypeBoxTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
  serializer: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
}

/** The fastify instance an API area's plugin registers its routes on. */
export type ApiInstance = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/** An API area: an encapsulated plugin, given only the services it uses. */
export type ApiPlugin<Services extends object> = FastifyPluginAsync<Services, RawServerDefault, TypeBoxTypeProvider>;

/** A request whose params, querystring and body are typed by the route's schema (validated before the handler or authoriser sees them). */
export type TypedRequest<S extends FastifySchema> = FastifyRequest<RouteGenericInterface, RawServerDefault, RawRequestDefaultExpression, S, TypeBoxTypeProvider>;

export interface ApiRoute<S extends FastifySchema> {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  url: string;
  schema: S;
  /** Stable operation name for audit and metrics, e.g. `keys.encrypt` (none on public routes: their metrics say method and URL). */
  operation?: string;
  /** Unauthenticated and unaudited (health, the audit public key). */
  public?: true;
  /** Unauthenticated but audited (logins). */
  anonymous?: true;
  /** A non-GET route that changes no state, or (false) a GET that does (see RouteInfo.readOnly in context.ts). */
  readOnly?: boolean;
  /** An anonymous route whose successes count toward the address's flood budget too (see FastifyContextConfig.floodCounted). */
  floodCounted?: true;
  /** The body holds a password or one-time code: no HMAC of it in the audit record (context.ts). */
  secretBody?: true;
  /** What the caller's policies must grant, from the validated params and body. */
  authorize?: (request: TypedRequest<S>) => Requirement[] | Promise<Requirement[]>;
  handler: RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, RouteGenericInterface, unknown, S, TypeBoxTypeProvider>;
}

/**
 * Registers one route. The route's keyhold settings go into its fastify `config`, exactly as
 * server.ts's guard and context.ts's routeInfo read them.
 */
export function route<S extends FastifySchema>(app: ApiInstance, r: ApiRoute<S>): void {
  app.route<RouteGenericInterface, unknown, S>({
    method: r.method,
    url: r.url,
    schema: r.schema,
    config: {
      ...(r.operation !== undefined ? { operation: r.operation } : {}),
      ...(r.public ? { public: true } : {}),
      ...(r.anonymous ? { anonymous: true } : {}),
      ...(r.readOnly !== undefined ? { readOnly: r.readOnly } : {}),
      ...(r.floodCounted ? { floodCounted: true } : {}),
      ...(r.secretBody ? { secretBody: true } : {}),
      // The guard calls it after validation, so the request has the shape its schema types it with.
      ...(r.authorize ? { authorize: r.authorize as Authorizer } : {}),
    },
    handler: r.handler,
  });
}

/** `GET url` without params or query: one answer, for a caller granted `requires`. */
export function getRoute<S extends TSchema>(app: ApiInstance, r: {
  url: string; operation: string; tag: string; summary: string; schema: S; requires: Requirement; answer: () => Promise<Static<S>>;
}): void {
  // Typed as any route: `answer` was checked against the schema at the call site (Static<S>), which a generic S cannot be here.
  route<FastifySchema>(app, {
    method: 'GET', url: r.url, operation: r.operation,
    schema: { tags: [r.tag], summary: r.summary, response: withErrors({ 200: r.schema }) },
    authorize: () => [r.requires],
    handler: r.answer,
  });
}

/**
 * `GET url`: the names of one kind of thing (keys, policies, roles, accessors...), for a caller
 * granted `list` on `policyPath`.
 */
export function listRoute<S extends TSchema>(app: ApiInstance, r: {
  url: string; operation: string; tag: string; summary: string; schema: S; policyPath: string; list: () => Promise<Static<S>>;
}): void {
  getRoute(app, { url: r.url, operation: r.operation, tag: r.tag, summary: r.summary, schema: r.schema, requires: [r.policyPath, 'list'], answer: r.list });
}

/** `DELETE url`: removes one thing named by the params and answers 204 with no body. */
export function deleteRoute<P extends TSchema>(app: ApiInstance, r: {
  url: string; operation: string; tag: string; summary: string; params: P;
  authorize: (request: TypedRequest<{ params: P }>) => Requirement[] | Promise<Requirement[]>;
  remove: (request: TypedRequest<{ params: P }>) => Promise<unknown>;
}): void {
  route(app, {
    method: 'DELETE', url: r.url, operation: r.operation,
    schema: { tags: [r.tag], summary: r.summary, params: r.params, response: withErrors({ 204: NoContent }) },
    authorize: r.authorize,
    handler: async (req, reply) => {
      await r.remove(req);
      return reply.code(204).send();
    },
  });
}
