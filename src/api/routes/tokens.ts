/**
 * Token routes: creation (children of the caller, or orphans with their own capability), the
 * caller's own record, and look-up / revocation by accessor. The token itself and its id hash are
 * never shown to anyone but the holder.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import type { Runtime } from '../../core/runtime.js';
import { KeyholdError } from '../../errors.js';
import { ACCESSOR_PATTERN, type TokenRecord } from '../../identity/tokens.js';
import { assertCanConfer } from '../../policy/confer.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import { callerToken } from '../auth.js';
import { Closed, ErrorResponse, withErrors } from '../schemas.js';

const PolicyName = Type.String({ pattern: POLICY_NAME_PATTERN.source });
/** The largest ttl a request may name; the server maximum (config `tokens.maxTtlSeconds`) then clamps it. */
const MAX_REQUEST_TTL_SECONDS = 366 * 24 * 3600;
const TokenBody = Closed({
  policies: Type.Array(PolicyName, { maxItems: 64, uniqueItems: true }),
  ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_REQUEST_TTL_SECONDS }), Type.String({ pattern: '^[1-9][0-9]{0,7}[smhd]$' })])),
  display_name: Type.Optional(Type.String({ maxLength: 128, pattern: '^[A-Za-z0-9 ._@:-]*$' })),
  no_parent: Type.Optional(Type.Boolean({ description: 'an orphan: not revoked with the caller, not limited by its expiry; needs create on sys/tokens/orphan' })),
});
type TokenBody = Static<typeof TokenBody>;
const Created = Closed({
  token: Type.String(), id: Type.String(), accessor: Type.String(), policies: Type.Array(Type.String()),
  expires_at: Type.String({ description: 'after clamping to the server maximum and to the parent\'s expiry' }),
});
const SelfView = Closed({
  id: Type.String(), accessor: Type.Optional(Type.String()), policies: Type.Array(Type.String()), created_at: Type.String(),
  expires_at: Type.Optional(Type.String()), display_name: Type.Optional(Type.String()),
});
const AccessorParams = Closed({ accessor: Type.String({ pattern: ACCESSOR_PATTERN.source, maxLength: 36 }) });
type AccessorParams = Static<typeof AccessorParams>;
/** What anyone with `read` on the accessor may see: never the token nor its id hash. */
const AccessorView = Closed({
  accessor: Type.String(), policies: Type.Array(Type.String()), created_at: Type.String(), expires_at: Type.Optional(Type.String()),
  display_name: Type.Optional(Type.String()), parent_accessor: Type.Optional(Type.String()), orphan: Type.Boolean(),
  selectors: Type.Optional(Type.Array(Type.String())),
});

const ORPHAN_PATH = policyPath(MOUNTS.tokens, 'orphan');
const accessorCapabilityPath = (req: { params: unknown }) => policyPath(MOUNTS.tokenAccessors, (req.params as AccessorParams).accessor);

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
function ttlSeconds(ttl: number | string | undefined): number | undefined {
  if (ttl === undefined || typeof ttl === 'number') return ttl;
  const seconds = Number(ttl.slice(0, -1)) * (UNIT_SECONDS[ttl.slice(-1)] ?? 1);
  if (seconds > MAX_REQUEST_TTL_SECONDS) throw new KeyholdError('ERR_BAD_REQUEST', `ttl must be at most ${MAX_REQUEST_TTL_SECONDS} seconds`);
  return seconds;
}

function accessorView(t: TokenRecord): Static<typeof AccessorView> {
  return {
    accessor: t.accessor as string, policies: t.policies, created_at: t.createdAt, orphan: t.parent === undefined,
    ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(t.displayName ? { display_name: t.displayName } : {}),
    ...(t.parentAccessor ? { parent_accessor: t.parentAccessor } : {}), ...(t.selectors ? { selectors: t.selectors } : {}),
  };
}

export function tokenRoutes(app: FastifyInstance, runtime: Runtime): void {
  app.post<{ Body: TokenBody }>('/v1/tokens', {
    schema: { tags: ['tokens'], summary: 'Create a child of the calling token (or an orphan) with a subset of its policies', body: TokenBody, response: withErrors({ 200: Created }) },
    config: {
      operation: 'tokens.create',
      authorize: (req) => ((req.body as TokenBody).no_parent ? [[MOUNTS.tokens.policy, 'create'], [ORPHAN_PATH, 'create']] : [[MOUNTS.tokens.policy, 'create']]),
    },
  }, async (req) => {
    const caller = callerToken(req);
    assertCanConfer(caller, req.body.policies);
    const ttl = ttlSeconds(req.body.ttl);
    const { token, record } = await runtime.tokens.create({
      policies: req.body.policies,
      ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
      ...(req.body.display_name ? { displayName: req.body.display_name } : {}),
      // A child keeps its parent's identity, so placeholder policies give it the parent's scope, no other.
      ...(caller.selectors ? { selectors: caller.selectors } : {}),
      ...(req.body.no_parent ? {} : { parent: caller }),
    });
    req.keyhold.auditFields.issued_accessor = record.accessor as string;
    return { token, id: record.id, accessor: record.accessor as string, policies: record.policies, expires_at: record.expiresAt as string };
  });

  app.get('/v1/tokens/self', {
    schema: { tags: ['tokens'], summary: 'Look up the calling token', response: withErrors({ 200: SelfView }) },
    // Any valid token may read itself.
    config: { operation: 'tokens.lookup-self', authorize: () => [] },
  }, async (req) => {
    const t = callerToken(req);
    return {
      id: t.id, policies: t.policies, created_at: t.createdAt, ...(t.accessor ? { accessor: t.accessor } : {}),
      ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(t.displayName ? { display_name: t.displayName } : {}),
    };
  });

  app.delete('/v1/tokens/self', {
    schema: { tags: ['tokens'], summary: 'Revoke the calling token and all its descendants', response: { 204: Type.Null(), 401: ErrorResponse } },
    config: { operation: 'tokens.revoke-self', authorize: () => [] },
  }, async (req, reply) => {
    await runtime.tokens.revoke(callerToken(req).id);
    return reply.code(204).send();
  });

  app.get('/v1/tokens/accessors', {
    schema: { tags: ['tokens'], summary: 'List token accessors', response: withErrors({ 200: Closed({ accessors: Type.Array(Type.String()) }) }) },
    config: { operation: 'tokens.list-accessors', authorize: () => [[policyPath(MOUNTS.tokenAccessors), 'list']] },
  }, async () => ({ accessors: await runtime.tokens.listAccessors() }));

  app.get<{ Params: AccessorParams }>('/v1/tokens/accessors/:accessor', {
    schema: { tags: ['tokens'], summary: 'Look up a token by its accessor (never the token itself)', params: AccessorParams, response: withErrors({ 200: AccessorView }) },
    config: { operation: 'tokens.lookup-accessor', authorize: (req) => [[accessorCapabilityPath(req), 'read']] },
  }, async (req) => accessorView(await runtime.tokens.lookupAccessor(req.params.accessor)));

  app.delete<{ Params: AccessorParams }>('/v1/tokens/accessors/:accessor', {
    schema: { tags: ['tokens'], summary: 'Revoke a token by its accessor, with all its descendants', params: AccessorParams, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'tokens.revoke-accessor', authorize: (req) => [[accessorCapabilityPath(req), 'delete']] },
  }, async (req, reply) => {
    await runtime.tokens.revokeAccessor(req.params.accessor);
    return reply.code(204).send();
  });
}
