/** Wire shapes of the console's session routes (`/v1/auth/session`, `/v1/auth/logout`) and audit views. */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/** Who the caller is: what the console shows in its header and uses to hide what it may not do. */
export const SessionView = Closed({
  /** `operator:<name>`, `oidc:<sub>`, or the token's display name / `token` for tokens that are not a person. */
  identity: Type.String(),
  display_name: Type.Optional(Type.String()),
  accessor: Type.Optional(Type.String()),
  policies: Type.Array(Type.String()),
  expires_at: Type.Optional(Type.String()),
  /** How this request was authenticated. */
  via: Type.Union([Type.Literal('session'), Type.Literal('bearer')]),
  /** A fresh CSRF token for the session's state-changing calls (session only). */
  csrf_token: Type.Optional(Type.String()),
});
export type SessionView = Static<typeof SessionView>;

/** What the login page offers. */
export const LoginMethods = Closed({ operator: Type.Boolean(), oidc: Type.Boolean() });
export type LoginMethods = Static<typeof LoginMethods>;

/** A console session started (the token stays in the HttpOnly cookie; the page gets only the CSRF token). */
export const SessionStarted = Closed({
  csrf_token: Type.String(), expires_at: Type.String(), policies: Type.Array(Type.String()), accessor: Type.String(),
});
export type SessionStarted = Static<typeof SessionStarted>;

const AuditActorView = Closed({
  accessor: Type.Optional(Type.String()), tokenId: Type.Optional(Type.String()),
  policies: Type.Optional(Type.Array(Type.String())), selectors: Type.Optional(Type.Array(Type.String())),
});

/** Audit entries as written (request and response records, and the log's own system entries). */
export const AuditEntryView = Type.Object({
  seq: Type.Integer(), time: Type.String(), type: Type.String(), hash: Type.Optional(Type.String()),
  /** On PostgreSQL: the chain (one per writer process) whose row this is; `seq` is the row's place in it. */
  chain: Type.Optional(Type.String()),
  requestId: Type.Optional(Type.String()), operation: Type.Optional(Type.String()), path: Type.Optional(Type.String()),
  actor: Type.Optional(AuditActorView),
  outcome: Type.Optional(Closed({ status: Type.Integer(), code: Type.Optional(Type.String()) })),
  fields: Type.Optional(Type.Record(Type.String(), Type.String())),
}, { additionalProperties: true });

export const AuditEntries = Closed({
  /** Oldest first. On PostgreSQL, the latest across every chain in the table, ordered by time. */
  entries: Type.Array(AuditEntryView),
  /** Lines of the active file's tail (rows of the table read) that are not entries (a tampered or torn line): counted, not hidden. */
  unreadable: Type.Integer(),
  /** On PostgreSQL: the chains in the table. */
  chains: Type.Optional(Type.Integer()),
});
export type AuditEntries = Static<typeof AuditEntries>;

const CheckpointView = Closed({ seq: Type.Integer(), head_seq: Type.Integer(), signed_at: Type.String() });

/** One chain of the PostgreSQL table (one per writer process), judged on its own. */
export const AuditChainVerdict = Closed({
  chain: Type.String(),
  ok: Type.Boolean(),
  /** Entries that verified (when broken: those before the failure). */
  entries: Type.Integer(),
  checkpoints: Type.Integer(),
  unsigned_entries: Type.Optional(Type.Integer()),
  last_checkpoint: Type.Optional(CheckpointView),
  /** The answering replica's own chain. */
  this_replica: Type.Boolean(),
  /**
   * Checked against what the writer knows: its latest checkpoint and the head it committed (so a
   * cut or rewritten tail shows, even after the last checkpoint). Only a replica's own chain is.
   */
  anchored: Type.Boolean(),
  failure: Type.Optional(Closed({ bad_seq: Type.Integer(), reason: Type.String(), truncated: Type.Optional(Type.Boolean()) })),
});
export type AuditChainVerdict = Static<typeof AuditChainVerdict>;

/**
 * The result of running the chain and checkpoint verifier over the server's audit files, or (on
 * PostgreSQL) over every chain of the audit table: then `ok`, `entries`, `checkpoints` and
 * `failure` are of all chains together, and `chains` has each one's verdict.
 */
export const AuditVerification = Closed({
  ok: Type.Boolean(),
  /** When the check was made (PostgreSQL: the moment the table was judged as of). */
  checked_at: Type.String(),
  entries: Type.Integer(),
  checkpoints: Type.Optional(Type.Integer()),
  unsigned_entries: Type.Optional(Type.Integer()),
  last_checkpoint: Type.Optional(CheckpointView),
  /** Whether the barrier's copy of the latest checkpoint anchored the check (detects a cut tail); on PostgreSQL, this replica's chain. */
  anchored: Type.Boolean(),
  failure: Type.Optional(Closed({
    bad_seq: Type.Integer(),
    /** The line in the file; on PostgreSQL the row's place in its chain (= bad_seq). */
    line: Type.Integer(),
    reason: Type.String(), file: Type.Optional(Type.String()), truncated: Type.Optional(Type.Boolean()),
    /** On PostgreSQL: the (first) broken chain. */
    chain: Type.Optional(Type.String()),
  })),
  /** On PostgreSQL: every chain in the table. */
  chains: Type.Optional(Type.Array(AuditChainVerdict)),
});
export type AuditVerification = Static<typeof AuditVerification>;
