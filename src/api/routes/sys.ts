import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../../core/runtime.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import { Closed, withErrors } from '../schemas.js';

const PolicyName = Type.String({ pattern: POLICY_NAME_PATTERN.source });
const PolicyParams = Closed({ name: PolicyName });
type PolicyParams = Static<typeof PolicyParams>;
const Capabilities = Type.Array(Type.String({ maxLength: 16 }), { minItems: 1, maxItems: 16 });
const Rule = Closed({ path: Type.String({ minLength: 1, maxLength: 512 }), capabilities: Capabilities });
const PolicyBody = Closed({ rules: Type.Array(Rule, { maxItems: 256 }) });
const PolicyView = Closed({ name: Type.String(), rules: Type.Array(Rule) });
/** Reported, never a reason for 503: see kubernetesHealth(). */
const KubernetesHealth = Closed({
  configured: Type.Boolean(), ok: Type.Boolean(),
  pods_synced: Type.Optional(Type.Boolean()), service_accounts_synced: Type.Optional(Type.Boolean()),
});
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
  kubernetes: KubernetesHealth,
  /** Which replica answered, and whether it leads (runs the background jobs); never a reason for 503. */
  replica: Closed({ id: Type.String(), leader: Type.Boolean(), background_jobs: Type.Array(Type.String()) }),
});

export const VERSION = '0.1.0';

/**
 * Kubernetes login's state, for the operator. It does not make health 503: secrets, keys and the
 * KMS plugin do not depend on it, and the KMS plugin is what kube-apiserver needs to start, so a
 * readiness probe failing while kube-apiserver is down would take keyhold out of service exactly
 * when the cluster needs it to come back. Pod-bound logins refuse themselves (503) meanwhile.
 */
function kubernetesHealth(runtime: Runtime): Static<typeof KubernetesHealth> {
  const k = runtime.kubernetesAuth.health();
  return {
    configured: k.configured, ok: k.ok,
    ...(k.podsSynced !== undefined ? { pods_synced: k.podsSynced } : {}),
    ...(k.serviceAccountsSynced !== undefined ? { service_accounts_synced: k.serviceAccountsSynced } : {}),
  };
}

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
      kubernetes: kubernetesHealth(runtime),
      replica: { id: runtime.leadership.replicaId, leader: runtime.leadership.isLeader, background_jobs: runtime.jobs.running ? runtime.jobs.names : [] },
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
}
