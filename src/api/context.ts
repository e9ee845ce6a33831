import type { FastifyContextConfig, FastifyRequest } from 'fastify';
import type { ClientAddress } from './client-address.js';
import type { TokenRecord } from '../identity/tokens.js';
import type { CompiledPolicies } from '../policy/evaluate.js';
import type { Capability } from '../policy/types.js';

/** A required (logical path, capability) pair; a request needs all of its pairs. */
export type Requirement = readonly [path: string, capability: Capability];

export type Authorizer = (request: FastifyRequest) => Requirement[] | Promise<Requirement[]>;

/** A route's keyhold settings, read once per request (fastify's routeOptions getter builds a new object per access). */
export interface RouteInfo {
  operation: string;
  public: boolean;
  /** No bearer token (a login): not authenticated or authorised, but audited like any other request. */
  anonymous: boolean;
  /**
   * Changes nothing: GET/HEAD, or a route whose config says `readOnly: true`. Every other route is
   * treated as state-changing and gets a write-ahead request record before its handler runs.
   */
  readOnly: boolean;
  authorize: Authorizer | undefined;
  /** The body holds a password or one-time code: not even its HMAC goes into the audit record. */
  secretBody: boolean;
}

export interface RequestState {
  route: RouteInfo;
  token: TokenRecord | null;
  policies: CompiledPolicies | null;
  /** Set by the error handler so the audit record carries the code. */
  errorCode: string | null;
  /** The JSON body as received, kept only to HMAC it into the audit record. */
  rawBody: string | null;
  /** Extra, non-sensitive facts for the response audit record (e.g. key version). */
  auditFields: Record<string, string>;
  /** True once this request's write-ahead `request` record is durable (the response record then omits the body HMAC it carries). */
  requestRecorded: boolean;
  /** A login admitted by the flood limit: its address, until it is answered (flood-limit.ts). */
  floodKey: string | null;
  /** The client and peer addresses, once resolved (client-address.ts). */
  client: ClientAddress | null;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Stable operation name for audit and metrics, e.g. `keys.encrypt`. */
    operation?: string;
    /** Unauthenticated and unaudited (health, metrics, OpenAPI). */
    public?: boolean;
    /** Unauthenticated but audited (logins). */
    anonymous?: boolean;
    /**
     * A non-GET route that changes no state (encrypt, decrypt, sign...): one outcome record, no
     * write-ahead request record. Only set it on routes that write nothing: the default is fail-safe.
     * `false` on a GET that writes (a login callback): it gets the write-ahead record too.
     */
    readOnly?: boolean;
    /** What the caller's policies must grant, computed from params and body. */
    authorize?: Authorizer;
    /**
     * The body holds a password or TOTP code: its text is not kept for the audit record's body
     * HMAC (a keyed hash of a password is a fast offline test of guesses for whoever holds the key).
     */
    secretBody?: boolean;
    /**
     * An anonymous route whose every answer counts toward the address's unauthenticated budget
     * (flood-limit.ts), not only its failures: its success stores something for anyone who asks.
     */
    floodCounted?: boolean;
  }
  interface FastifyRequest {
    keyhold: RequestState;
  }
}

const routeInfos = new WeakMap<object, RouteInfo>();

/** The one classification of a route as changing nothing (see RouteInfo.readOnly). */
export function isReadOnly(method: string | readonly string[], config: FastifyContextConfig | undefined): boolean {
  if (config?.readOnly === true) return true;
  // A GET that writes (the browser form of a login callback: a redirect from the provider is a GET).
  if (config?.readOnly === false) return false;
  const methods = typeof method === 'string' ? [method] : method;
  return methods.every((m) => m === 'GET' || m === 'HEAD');
}

/** Per route, computed on its first request and reused. */
export function routeInfo(request: FastifyRequest): RouteInfo {
  const options = request.routeOptions;
  const config = options.config as FastifyContextConfig | undefined;
  const cacheKey = (config ?? options) as object;
  let info = routeInfos.get(cacheKey);
  if (!info) {
    info = {
      operation: config?.operation ?? (options.url ? `${request.method} ${options.url}` : 'unmatched'),
      public: config?.public === true,
      anonymous: config?.anonymous === true,
      readOnly: isReadOnly(options.method ?? request.method, config),
      authorize: config?.authorize,
      secretBody: config?.secretBody === true,
    };
    if (config) routeInfos.set(cacheKey, info);
  }
  return info;
}
