/** Wire shape of `GET /v1/sys/health`. */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/** Reported, never a reason for 503 (api/routes/sys.ts says why). */
export const KubernetesHealth = Closed({
  configured: Type.Boolean(), ok: Type.Boolean(),
  pods_synced: Type.Optional(Type.Boolean()), service_accounts_synced: Type.Optional(Type.Boolean()),
});
export type KubernetesHealth = Static<typeof KubernetesHealth>;

/** The audit part of health: failed with a reason code (ENOSPC, FILE_DELETED, …), rotation and the last checkpoint. */
export const AuditHealth = Closed({
  ok: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  terminal: Type.Optional(Type.Boolean()),
  failed_at: Type.Optional(Type.String()),
  rotated_files: Type.Integer({ minimum: 0 }),
  chain: Type.Optional(Type.String()),
  last_checkpoint: Type.Optional(Closed({ seq: Type.Integer(), head_seq: Type.Integer(), time: Type.String() })),
});
export type AuditHealth = Static<typeof AuditHealth>;

/** Root-key rotation state (GET /v1/sys/seal/rotation, POST /v1/sys/seal/rotate-root). */
export const RootRotationStatus = Closed({
  generation: Type.Integer({ minimum: 1 }),
  rewriting: Type.Boolean(),
  scanned: Type.Integer({ minimum: 0 }),
  rewritten: Type.Integer({ minimum: 0 }),
  remaining_estimate: Type.Integer({ minimum: 0 }),
  pass: Type.Integer({ minimum: 0 }),
  started_at: Type.Optional(Type.String()),
  finished_at: Type.Optional(Type.String()),
});
export type RootRotationStatus = Static<typeof RootRotationStatus>;

export const Health = Closed({
  initialized: Type.Boolean(), sealed: Type.Boolean(), version: Type.String(), uptime_seconds: Type.Number(),
  hsm: Closed({
    ok: Type.Boolean(), token: Type.String(), latency_ms: Type.Number(), error: Type.Optional(Type.String()),
    /** Each member of the HSM cluster (a single endpoint is one member): its breaker state, last probe latency, failures, calls in flight. */
    members: Type.Optional(Type.Array(Closed({
      name: Type.String(), state: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('probing')]),
      latency_ms: Type.Number(), failures: Type.Integer(), in_flight: Type.Integer(),
    }))),
  }),
  audit: AuditHealth,
  kubernetes: KubernetesHealth,
  /** Which replica answered, and whether it leads (runs the background jobs); never a reason for 503. */
  replica: Closed({ id: Type.String(), leader: Type.Boolean(), background_jobs: Type.Array(Type.String()) }),
  /** The root key's generation, and whether records are still being rewritten since a rotation; never a reason for 503. */
  root_key: Type.Optional(Closed({ generation: Type.Integer({ minimum: 1 }), rewriting: Type.Boolean() })),
});
export type Health = Static<typeof Health>;
