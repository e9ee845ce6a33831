import type { FastifyRequest } from 'fastify';
import type { Runtime } from '../core/runtime.js';
import { KeyholdError } from '../errors.js';
import type { TokenRecord } from '../identity/tokens.js';
import type { CompiledPolicies } from '../policy/evaluate.js';
import type { Requirement } from './context.js';
import { sessionToken } from './session.js';

const variablesOf = new WeakMap<TokenRecord, Readonly<Record<string, string>> | undefined>();

/** Policy placeholders' values from a token's selectors (`k8s:ns:app` → k8s.namespace=app); computed once per cached token. */
function identityVariables(token: TokenRecord): Readonly<Record<string, string>> | undefined {
  if (!token.selectors) return undefined;
  if (variablesOf.has(token)) return variablesOf.get(token);
  const variables: Record<string, string> = {};
  for (const selector of token.selectors) {
    const [kind, scope, ...rest] = selector.split(':');
    const value = rest.join(':');
    if (kind !== 'k8s') continue;
    if (scope === 'ns') variables['k8s.namespace'] = value;
    if (scope === 'sa') variables['k8s.service_account'] = value.split('/')[1] ?? '';
    if (scope === 'pod') variables['k8s.pod_name'] = value.split('/')[1] ?? '';
  }
  variablesOf.set(token, variables);
  return variables;
}

/** The bearer token, or without an Authorization header the console's session cookie (session.ts: CSRF-checked). */
function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (header === undefined) return sessionToken(request);
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new KeyholdError('ERR_UNAUTHENTICATED', 'Authorization header must be "Bearer <token>"');
  return match[1] as string;
}

/**
 * Runs on every non-public request before its body is parsed. A token whose policies grant
 * nothing at all is refused at once, whatever the request looks like. With the token and its
 * policies cached (the common case) it stays synchronous: awaits cost more than the look-ups.
 */
export function authenticate(request: FastifyRequest, runtime: Runtime): void | Promise<void> {
  const token = bearerToken(request);
  // On replicas the synchronous look-ups find nothing (the barrier's read cache answers a hit only
  // after its change feed's sync(), so a token revoked on another replica is never served from it).
  const cached = runtime.tokens.cached(token);
  const compiled = cached && cached.policies.length > 0 ? runtime.policies.cachedFor(cached.policies, identityVariables(cached)) : undefined;
  if (cached && compiled) {
    request.keyhold.token = cached;
    request.keyhold.policies = compiled;
    return;
  }
  return (async () => {
    const record = cached ?? (await runtime.tokens.lookup(token));
    request.keyhold.token = record;
    if (record.policies.length === 0) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied: the token has no policies');
    request.keyhold.policies = await runtime.policies.compiledFor(record.policies, identityVariables(record));
  })();
}

function check(request: FastifyRequest, required: Requirement[]): void {
  const policies = request.keyhold.policies as CompiledPolicies;
  for (const [path, capability] of required) {
    if (!policies.allowed(path, capability)) {
      throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: ${capability} on ${path}`);
    }
  }
}

/**
 * Runs after validation, when params and body are known (server.ts wraps every non-public route
 * handler with it): every (path, capability) the route names must be granted.
 */
export function authorize(request: FastifyRequest): void | Promise<void> {
  const { route, policies } = request.keyhold;
  if (!policies) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
  if (!route.authorize) throw new KeyholdError('ERR_PERMISSION_DENIED', 'permission denied');
  const required = route.authorize(request);
  if (required instanceof Promise) return required.then((r) => check(request, r));
  check(request, required);
}

/** The calling token of an authenticated route (the onRequest hook set it; never null past authorisation). */
export function callerToken(request: FastifyRequest): TokenRecord {
  const token = request.keyhold.token;
  if (!token) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
  return token;
}

/** Runs a step that is synchronous in the common case as a callback-style fastify hook (no promise per request). */
export function settle(step: () => void | Promise<void>, done: (err?: Error) => void): void {
  let result: void | Promise<void>;
  try {
    result = step();
  } catch (err) {
    done(err as Error);
    return;
  }
  if (result instanceof Promise) result.then(() => done(), (err: Error) => done(err));
  else done();
}
