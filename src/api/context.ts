import type { FastifyRequest } from 'fastify';
import type { TokenRecord } from '../identity/tokens.js';
import type { CompiledPolicies } from '../policy/evaluate.js';
import type { Capability } from '../policy/types.js';

/** A required (logical path, capability) pair; a request needs all of its pairs. */
export type Requirement = readonly [path: string, capability: Capability];

export type Authorizer = (request: FastifyRequest) => Requirement[] | Promise<Requirement[]>;

export interface RequestState {
  token: TokenRecord | null;
  policies: CompiledPolicies | null;
  /** Set by the error handler so the audit record carries the code. */
  errorCode: string | null;
  /** Extra, non-sensitive facts for the response audit record (e.g. key version). */
  auditFields: Record<string, string>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Stable operation name for audit and metrics, e.g. `keys.encrypt`. */
    operation?: string;
    /** Unauthenticated and unaudited (health, metrics, OpenAPI). */
    public?: boolean;
    /** What the caller's policies must grant, computed from params and body. */
    authorize?: Authorizer;
  }
  interface FastifyRequest {
    keyhold: RequestState;
  }
}

export function state(request: FastifyRequest): RequestState {
  return request.keyhold;
}
