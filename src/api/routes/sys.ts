import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../../core/runtime.js';
import { KeyholdError } from '../../errors.js';
import { ROOT_POLICY_NAME } from '../../policy/evaluate.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import { Closed, ErrorResponse, withErrors } from '../schemas.js';

const PolicyName = Type.String({ pattern: POLICY_NAME_PATTERN.source });
const PolicyParams = Closed({ name: PolicyName });
type PolicyParams = Static<typeof PolicyParams>;
const Capabilities = Type.Array(Type.String({ maxLength: 16 }), { minItems: 1, maxItems: 16 });
const Rule = Closed({ path: Type.String({ minLength: 1, maxLength: 512 }), capabilities: Capabilities });
const PolicyBody = Closed({ rules: Type.Array(Rule, { maxItems: 256 }) });
const PolicyView = Closed({ name: Type.String(), rules: Type.Array(Rule) });
const MAX_TTL_SECONDS = 366 * 24 * 3600;
const TokenBody = Closed({
  policies: Type.Array(PolicyName, { maxItems: 64, uniqueItems: true }),
  ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS }), Type.String({ pattern: '^[1-9][0-9]{0,7}[smhd]$' })])),
  display_name: Type.Optional(Type.String({ maxLength: 128, pattern: '^[A-Za-z0-9 ._@:-]*$' })),
});
const TokenView = Closed({ id: Type.String(), policies: Type.Array(Type.String()), created_at: Type.String(), expires_at: Type.Optional(Type.String()), display_name: Type.Optional(Type.String()) });
/** The audit part of health: failed with a reason code (ENOSPC, FILE_DELETED, …), rotation and the last checkpoint. */
const AuditHealth = Closed({
  ok: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  terminal: Type.Optional(Type.Boolean()),
  failed_at: Type.Optional(Type.String()),
  rotated_files: Type.Integer({ minimum: 0 }),
  chain: Type.Optional(Type.String()),
  last_checkpoint: Type.Optional(Closed({ seq: Type.Integer(), head_seq: Type.Integer(), time: Type.String() })),
});
const Health = Closed({
  initialized: Type.Boolean(), sealed: Type.Boolean(), version: Type.String(), uptime_seconds: Type.Number(),
  hsm: Closed({ ok: Type.Boolean(), token: Type.String(), latency_ms: Type.Number(), error: Type.Optional(Type.String()) }),
  audit: AuditHealth,
});

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
function ttlSeconds(ttl: number | string | undefined): number | undefined {
  if (ttl === undefined || typeof ttl === 'number') return ttl;
  const seconds = Number(ttl.slice(0, -1)) * (UNIT_SECONDS[ttl.slice(-1)] ?? 1);
  if (seconds > MAX_TTL_SECONDS) throw new KeyholdError('ERR_BAD_REQUEST', `ttl must be at most ${MAX_TTL_SECONDS} seconds`);
  return seconds;
}

export const VERSION = '0.1.0';

function auditHealth(runtime: Runtime): Static<typeof AuditHealth> {
  const s = runtime.audit.status;
  return {
    ok: s.ok,
    ...(s.reason !== undefined ? { reason: s.reason, terminal: s.terminal === true } : {}),
    ...(s.failedAt !== undefined ? { failed_at: s.failedAt } : {}),
    rotated_files: s.rotatedFiles,
    ...(s.chain !== undefined ? { chain: s.chain } : {}),
    ...(s.lastCheckpoint ? { last_checkpoint: { seq: s.lastCheckpoint.seq, head_seq: s.lastCheckpoint.headSeq, time: s.lastCheckpoint.time } } : {}),
  };
}

export function sysRoutes(app: FastifyInstance, runtime: Runtime): void {
  app.get('/v1/sys/health', {
    schema: { tags: ['sys'], summary: '200 when initialised, unsealed, the HSM answers and audit is writable; 503 otherwise', response: { 200: Health, 503: Health } },
    config: { public: true },
  }, async (_req, reply) => {
    const hsm = await runtime.hsm.health();
    const sealed = runtime.barrier.sealed;
    const body = {
      initialized: true, sealed, version: VERSION, uptime_seconds: Math.round((Date.now() - runtime.startedAt) / 1000),
      hsm: { ok: hsm.ok, token: runtime.hsm.token.label, latency_ms: Math.round(hsm.latencyMs * 1000) / 1000, ...(hsm.error ? { error: 'HSM probe failed' } : {}) },
      audit: auditHealth(runtime),
    };
    return reply.code(hsm.ok && !sealed && runtime.audit.healthy ? 200 : 503).send(body);
  });

  app.get('/v1/policies', {
    schema: { tags: ['policies'], summary: 'List policy names', response: withErrors({ 200: Closed({ policies: Type.Array(Type.String()) }) }) },
    config: { operation: 'policies.list', authorize: () => [['sys/policies', 'list']] },
  }, async () => ({ policies: await runtime.policies.list() }));

  app.put<{ Params: PolicyParams; Body: Static<typeof PolicyBody> }>('/v1/policies/:name', {
    schema: { tags: ['policies'], summary: 'Create or replace a policy', params: PolicyParams, body: PolicyBody, response: withErrors({ 200: PolicyView }) },
    config: { operation: 'policies.write', authorize: (req) => [[`sys/policies/${(req.params as PolicyParams).name}`, 'update']] },
  }, async (req) => runtime.policies.put(req.params.name, req.body));

  app.get<{ Params: PolicyParams }>('/v1/policies/:name', {
    schema: { tags: ['policies'], summary: 'Read a policy', params: PolicyParams, response: withErrors({ 200: PolicyView }) },
    config: { operation: 'policies.read', authorize: (req) => [[`sys/policies/${(req.params as PolicyParams).name}`, 'read']] },
  }, async (req) => runtime.policies.get(req.params.name));

  app.delete<{ Params: PolicyParams }>('/v1/policies/:name', {
    schema: { tags: ['policies'], summary: 'Delete a policy', params: PolicyParams, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'policies.delete', authorize: (req) => [[`sys/policies/${(req.params as PolicyParams).name}`, 'delete']] },
  }, async (req, reply) => {
    await runtime.policies.delete(req.params.name);
    return reply.code(204).send();
  });

  app.post<{ Body: Static<typeof TokenBody> }>('/v1/tokens', {
    schema: { tags: ['tokens'], summary: 'Create a token with a subset of the caller\'s policies', body: TokenBody, response: withErrors({ 200: Closed({ token: Type.String(), id: Type.String(), policies: Type.Array(Type.String()), expires_at: Type.Optional(Type.String()) }) }) },
    config: { operation: 'tokens.create', authorize: () => [['sys/tokens', 'create']] },
  }, async (req) => {
    const caller = req.keyhold.token;
    if (!caller) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
    // A token can only hand out what it holds (root holds everything), so tokens cannot escalate.
    if (!caller.policies.includes(ROOT_POLICY_NAME)) {
      const extra = req.body.policies.filter((p) => !caller.policies.includes(p));
      if (extra.length > 0) throw new KeyholdError('ERR_PERMISSION_DENIED', `cannot grant policies the caller does not hold: ${extra.join(', ')}`);
    }
    const { token, record } = await runtime.tokens.create({ policies: req.body.policies, ttlSeconds: ttlSeconds(req.body.ttl), displayName: req.body.display_name, parent: caller.id });
    return { token, id: record.id, policies: record.policies, ...(record.expiresAt ? { expires_at: record.expiresAt } : {}) };
  });

  app.get('/v1/tokens/self', {
    schema: { tags: ['tokens'], summary: 'Look up the calling token', response: withErrors({ 200: TokenView }) },
    // Any valid token may read itself.
    config: { operation: 'tokens.lookup-self', authorize: () => [] },
  }, async (req) => {
    const t = req.keyhold.token;
    if (!t) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
    return { id: t.id, policies: t.policies, created_at: t.createdAt, ...(t.expiresAt ? { expires_at: t.expiresAt } : {}), ...(t.displayName ? { display_name: t.displayName } : {}) };
  });

  app.delete('/v1/tokens/self', {
    schema: { tags: ['tokens'], summary: 'Revoke the calling token', response: { 204: Type.Null(), 401: ErrorResponse } },
    config: { operation: 'tokens.revoke-self', authorize: () => [] },
  }, async (req, reply) => {
    const t = req.keyhold.token;
    if (!t) throw new KeyholdError('ERR_UNAUTHENTICATED', 'not authenticated');
    await runtime.tokens.revoke(t.id);
    return reply.code(204).send();
  });
}
