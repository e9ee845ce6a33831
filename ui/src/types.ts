/** The API's answers the console reads (the server's wire schemas, src/wire/, are the reference). */
export interface Session {
  identity: string;
  display_name?: string;
  accessor?: string;
  policies: string[];
  expires_at?: string;
  via: 'session' | 'bearer';
  csrf_token?: string;
}

export interface KeyDescription {
  name: string; type: string; protection: string; created_at: string; latest_version: number;
  min_decryption_version: number; deletion_allowed: boolean; disabled: boolean;
  versions: Array<{ version: number; created_at: string; public_key?: string }>;
}

export interface Approval {
  id: string; state: string; operation: string; path: string; params_sha256: string; required: number; expires_at: string;
  method?: string; url?: string; requester?: string; created_at?: string;
  approvals?: Array<string | { person: string; at: string }>;
  rules?: Array<{ policy: string; group: string; required: number; approvals: number }>;
}

export interface Health {
  initialized: boolean; sealed: boolean; version: string; uptime_seconds: number;
  hsm: { ok: boolean; token: string; latency_ms: number; error?: string; members?: Array<{ name: string; state: string; latency_ms: number; failures: number; in_flight: number }> };
  audit: { ok: boolean; reason?: string; terminal?: boolean; failed_at?: string; rotated_files: number; chain?: string; last_checkpoint?: { seq: number; head_seq: number; time: string } };
  kubernetes: { configured: boolean; ok: boolean; pods_synced?: boolean; service_accounts_synced?: boolean };
  replica: { id: string; leader: boolean; background_jobs: string[] };
  root_key?: { generation: number; rewriting: boolean };
}

export interface AuditEntry {
  seq: number; time: string; type: string; hash?: string; chain?: string; requestId?: string; operation?: string; path?: string;
  actor?: { accessor?: string; policies?: string[]; selectors?: string[] };
  outcome?: { status: number; code?: string };
  fields?: Record<string, string>;
}

export interface AuditCheckpointView { seq: number; head_seq: number; signed_at: string }

/** One chain of the PostgreSQL audit table (one per server process). */
export interface AuditChainVerdict {
  chain: string; ok: boolean; entries: number; checkpoints: number; unsigned_entries?: number; last_checkpoint?: AuditCheckpointView;
  this_replica: boolean; anchored: boolean; failure?: { bad_seq: number; reason: string; truncated?: boolean };
}

export interface AuditVerification {
  ok: boolean; checked_at: string; entries: number; checkpoints?: number; unsigned_entries?: number; anchored: boolean;
  last_checkpoint?: AuditCheckpointView;
  failure?: { bad_seq: number; line: number; reason: string; file?: string; truncated?: boolean; chain?: string };
  chains?: AuditChainVerdict[];
}
