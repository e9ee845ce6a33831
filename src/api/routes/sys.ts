import type { AuditLog } from '../../audit/log.js';
import type { Barrier } from '../../barrier/barrier.js';
import type { RootRotation } from '../../barrier/rotation.js';
import type { BackgroundJobs } from '../../ha/jobs.js';
import type { Leadership } from '../../ha/leader.js';
import type { Hsm } from '../../hsm/types.js';
import type { KubernetesAuth } from '../../identity/kubernetes/auth.js';
import { Health, type AuditHealth, type KubernetesHealth } from '../../wire/sys.js';
import { route, type ApiPlugin } from '../route.js';

export const VERSION = '0.1.0';

/** Health reads state from every part of the server, and changes none of it. */
export interface SysApiOptions {
  hsm: Pick<Hsm, 'health' | 'token'>;
  barrier: Pick<Barrier, 'sealed' | 'generation'>;
  audit: Pick<AuditLog, 'status' | 'healthy'>;
  kubernetesAuth: Pick<KubernetesAuth, 'health'>;
  leadership: Pick<Leadership, 'replicaId' | 'isLeader'>;
  jobs: Pick<BackgroundJobs, 'running' | 'names'>;
  rootRotation: Pick<RootRotation, 'inProgress'>;
  startedAt: number;
}

/**
 * Kubernetes login's state, for the operator. It does not make health 503: secrets, keys and the
 * KMS plugin do not depend on it, and the KMS plugin is what kube-apiserver needs to start, so a
 * readiness probe failing while kube-apiserver is down would take keyhold out of service exactly
 * when the cluster needs it to come back. Pod-bound logins refuse themselves (503) meanwhile.
 */
function kubernetesHealth(kubernetesAuth: SysApiOptions['kubernetesAuth']): KubernetesHealth {
  const k = kubernetesAuth.health();
  return {
    configured: k.configured, ok: k.ok,
    ...(k.podsSynced !== undefined ? { pods_synced: k.podsSynced } : {}),
    ...(k.serviceAccountsSynced !== undefined ? { service_accounts_synced: k.serviceAccountsSynced } : {}),
  };
}

function auditHealth(audit: SysApiOptions['audit']): AuditHealth {
  const s = audit.status;
  return {
    ok: s.ok,
    ...(s.reason !== undefined ? { reason: s.reason, terminal: s.terminal === true } : {}),
    ...(s.failedAt !== undefined ? { failed_at: s.failedAt } : {}),
    rotated_files: s.rotatedFiles,
    ...(s.chain !== undefined ? { chain: s.chain } : {}),
    ...(s.lastCheckpoint ? { last_checkpoint: { seq: s.lastCheckpoint.seq, head_seq: s.lastCheckpoint.headSeq, time: s.lastCheckpoint.time } } : {}),
  };
}

export const sysApi: ApiPlugin<SysApiOptions> = async (app, { hsm, barrier, audit, kubernetesAuth, leadership, jobs, rootRotation, startedAt }) => {
  route(app, {
    method: 'GET', url: '/v1/sys/health', public: true,
    schema: { tags: ['sys'], summary: '200 when initialised, unsealed, the HSM answers and audit is writable; 503 otherwise', response: { 200: Health, 503: Health } },
    handler: async (_req, reply) => {
      const probe = await hsm.health();
      const sealed = barrier.sealed;
      const body = {
        initialized: true, sealed, version: VERSION, uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
        hsm: {
          ok: probe.ok, token: hsm.token.label, latency_ms: Math.round(probe.latencyMs * 1000) / 1000, ...(probe.error ? { error: 'HSM probe failed' } : {}),
          ...(probe.members ? { members: probe.members.map((m) => ({ name: m.name, state: m.state, latency_ms: Math.round(m.latencyMs * 1000) / 1000, failures: m.failures, in_flight: m.inFlight })) } : {}),
        },
        audit: auditHealth(audit),
        kubernetes: kubernetesHealth(kubernetesAuth),
        replica: { id: leadership.replicaId, leader: leadership.isLeader, background_jobs: jobs.running ? jobs.names : [] },
        ...(sealed ? {} : { root_key: { generation: barrier.generation, rewriting: rootRotation.inProgress } }),
      };
      return reply.code(probe.ok && !sealed && audit.healthy ? 200 : 503).send(body);
    },
  });
};
