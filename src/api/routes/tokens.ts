/**
 * Token routes: creation (children of the caller, or orphans with their own capability), the
 * caller's own record, and look-up / revocation by accessor. The token itself and its id hash are
 * never shown to anyone but the holder.
 */
import { Type } from '@sinclair/typebox';
import { KeyholdError } from '../../errors.js';
import { ACCESSOR_PATTERN, type TokenRecord, type TokenStore } from '../../identity/tokens.js';
import { assertCanConfer } from '../../policy/confer.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import { AccessorList, AccessorView, TokenCreated, TokenSelfView } from '../../wire/tokens.js';
import { callerToken } from '../auth.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, ErrorResponse, NoContent, withErrors } from '../schemas.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';

export interface TokensApiOptions {
  tokens: TokenStore;
}

const PolicyName = Type.String({ pattern: POLICY_NAME_PATTERN.source });
/** The largest ttl a request may name; the server maximum (config `tokens.maxTtlSeconds`) then clamps it. */
const MAX_REQUEST_TTL_SECONDS = 366 * 24 * 3600;
const TokenBody = Closed({
  policies: Type.Array(PolicyName, { maxItems: 64, uniqueItems: true }),
  ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_REQUEST_TTL_SECONDS }), Type.String({ pattern: '^[1-9][0-9]{0,7}[smhd]$' })])),
  display_name: Type.Optional(Type.String({ maxLength: 128, pattern: '^[A-Za-z0-9 ._@:-]*$' })),
  no_parent: Type.Optional(Type.Boolean({ description: 'an orphan: not revoked with the caller, not limited by its expiry; needs create on sys/tokens/orphan' })),
});
const AccessorParams = Closed({ accessor: Type.String({ pattern: ACCESSOR_PATTERN.source, maxLength: 36 }) });

const ORPHAN_PATH = policyPath(MOUNTS.tokens, 'orphan');
const accessorCapabilityPath = (accessor: string) => policyPath(MOUNTS.tokenAccessors, accessor);

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
function ttlSeconds(ttl: number | string | undefined): number | undefined {
  if (ttl === undefined || typeof ttl === 'number') return ttl;
  const seconds = Number(ttl.slice(0, -1)) * (UNIT_SECONDS[ttl.slice(-1)] ?? 1);
  if (seconds > MAX_REQUEST_TTL_SECONDS) throw new KeyholdError('ERR_BAD_REQUEST', `ttl must be at most ${MAX_REQUEST_TTL_SECONDS} seconds`);
  return seconds;
}

function accessorView(t: TokenRecord): AccessorView {
  return {
    accessor: t.accessor as string, policies: t.policies, created_at: t.createdAt, orphan: t.parent === undefined,
    ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(t.displayName ? { display_name: t.displayName } : {}),
    ...(t.parentAccessor ? { parent_accessor: t.parentAccessor } : {}), ...(t.selectors ? { selectors: t.selectors } : {}),
  };
}

export const tokensApi: ApiPlugin<TokensApiOptions> = async (app, { tokens }) => {
  route(app, {
    method: 'POST', url: '/v1/tokens', operation: 'tokens.create',
    schema: { tags: ['tokens'], summary: 'Create a child of the calling token (or an orphan) with a subset of its policies', body: TokenBody, response: withErrors({ 200: TokenCreated }) },
    authorize: (req) => (req.body.no_parent ? [[MOUNTS.tokens.policy, 'create'], [ORPHAN_PATH, 'create']] : [[MOUNTS.tokens.policy, 'create']]),
    handler: async (req) => {
      const caller = callerToken(req);
      assertCanConfer(caller, req.body.policies);
      const ttl = ttlSeconds(req.body.ttl);
      const { token, record } = await tokens.create({
        policies: req.body.policies,
        ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
        ...(req.body.display_name ? { displayName: req.body.display_name } : {}),
        // A child keeps its parent's identity, so placeholder policies give it the parent's scope, no other.
        ...(caller.selectors ? { selectors: caller.selectors } : {}),
        ...(req.body.no_parent ? {} : { parent: caller }),
      });
      req.keyhold.auditFields.issued_accessor = record.accessor as string;
      return { token, id: record.id, accessor: record.accessor as string, policies: record.policies, expires_at: record.expiresAt as string };
    },
  });

  route(app, {
    method: 'GET', url: '/v1/tokens/self', operation: 'tokens.lookup-self',
    schema: { tags: ['tokens'], summary: 'Look up the calling token', response: withErrors({ 200: TokenSelfView }) },
    // Any valid token may read itself.
    authorize: () => [],
    handler: async (req) => {
      const t = callerToken(req);
      return {
        id: t.id, policies: t.policies, created_at: t.createdAt, ...(t.accessor ? { accessor: t.accessor } : {}),
        ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(t.displayName ? { display_name: t.displayName } : {}),
      };
    },
  });

  route(app, {
    method: 'DELETE', url: '/v1/tokens/self', operation: 'tokens.revoke-self',
    schema: { tags: ['tokens'], summary: 'Revoke the calling token and all its descendants', response: { 204: NoContent, 401: ErrorResponse } },
    authorize: () => [],
    handler: async (req, reply) => {
      await tokens.revoke(callerToken(req).id);
      return reply.code(204).send();
    },
  });

  listRoute(app, {
    url: '/v1/tokens/accessors', operation: 'tokens.list-accessors', tag: 'tokens', summary: 'List token accessors', schema: AccessorList, policyPath: policyPath(MOUNTS.tokenAccessors),
    list: async () => ({ accessors: await tokens.listAccessors() }),
  });

  route(app, {
    method: 'GET', url: '/v1/tokens/accessors/:accessor', operation: 'tokens.lookup-accessor',
    schema: { tags: ['tokens'], summary: 'Look up a token by its accessor (never the token itself)', params: AccessorParams, response: withErrors({ 200: AccessorView }) },
    authorize: (req) => [[accessorCapabilityPath(req.params.accessor), 'read']],
    handler: async (req) => accessorView(await tokens.lookupAccessor(req.params.accessor)),
  });

  deleteRoute(app, {
    url: '/v1/tokens/accessors/:accessor', operation: 'tokens.revoke-accessor', tag: 'tokens', summary: 'Revoke a token by its accessor, with all its descendants', params: AccessorParams,
    authorize: (req) => [[accessorCapabilityPath(req.params.accessor), 'delete']],
    remove: (req) => tokens.revokeAccessor(req.params.accessor),
  });
};
