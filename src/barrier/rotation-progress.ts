/** The state of a root-key rotation's rewrite, as stored in the barrier, and as the API shows it. */
export const ROTATION_PATH = 'sys/root-rotation';

/** The rewrite's state, in the barrier beside the keyring; written in the rotation's own atomic write, then after every batch. */
export interface RotationProgress {
  version: 1;
  /** The generation records are being rewritten to. */
  generation: number;
  rewriting: boolean;
  /** 1: the first pass; 2 and up: final passes, repeated until one rewrites nothing. */
  pass: number;
  /** The last storage key done in this pass ('' = none yet): a restart resumes after it. */
  cursor: string;
  /** Records in this pass's listing, and how many of them were scanned so far. */
  passTotal: number;
  passScanned: number;
  passRewritten: number;
  scanned: number;
  rewritten: number;
  startedAt: string;
  finishedAt?: string;
}

/** Wire shape of the rotation state (GET /v1/sys/seal/rotation). */
export interface RotationStatus {
  generation: number;
  rewriting: boolean;
  scanned: number;
  rewritten: number;
  remaining_estimate: number;
  pass: number;
  started_at?: string;
  finished_at?: string;
}

export interface RotationSettings {
  /** Records per batch; the cursor is saved after each. */
  batchSize: number;
  /** Pause between batches, so foreground requests keep their latency. */
  pauseMs: number;
  /**
   * Shared storage (PostgreSQL): the final pass starts at least this long after the rotation, so
   * every replica has learnt the new root key from the change feed (see the design notes).
   */
  settleMs: number;
  /** How often the leader checks for a rewrite to do (besides being told at once). */
  intervalMs: number;
}

export const DEFAULT_ROTATION_SETTINGS: RotationSettings = { batchSize: 200, pauseMs: 25, settleMs: 5_000, intervalMs: 10_000 };

export function rotationStatus(p: RotationProgress | null, generation: number): RotationStatus {
  if (!p) return { generation, rewriting: false, scanned: 0, rewritten: 0, remaining_estimate: 0, pass: 0 };
  return {
    generation: p.generation, rewriting: p.rewriting, scanned: p.scanned, rewritten: p.rewritten,
    remaining_estimate: p.rewriting ? Math.max(0, p.passTotal - p.passScanned) : 0, pass: p.pass,
    started_at: p.startedAt, ...(p.finishedAt ? { finished_at: p.finishedAt } : {}),
  };
}
