/**
 * The retention sweep of approval requests: deletes requests that ended (denied, cancelled,
 * executed, expired) more than `retentionSeconds` ago. The audit log keeps their whole history
 * (every step is a request of its own, with approval_id), so nothing an auditor needs goes.
 *
 * Every replica sweeps, on its own timer (unref'd, so it never keeps a process alive): deletes
 * are conditional on the bytes read (request-store.ts `sweep`), so passes racing on several
 * replicas delete each request once, and a request that changed meanwhile is left alone. In one
 * process at most one pass runs at a time. A pass is audited as one record (`approvals.sweep-pass`,
 * with the count it deleted) when it deleted something or failed; a pass that found nothing to do
 * writes nothing, so an idle store does not fill the log.
 */
import { randomUUID } from 'node:crypto';
import type { AuditRecord } from '../audit/entry.js';
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { ApprovalRequestStore, SweepProgress } from './request-store.js';
import { endedAt } from './state.js';

export const DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600;
export const DEFAULT_SWEEP_INTERVAL_SECONDS = 3600;
/** The first pass after start: soon, so that a server restarted more often than the interval still sweeps. */
const FIRST_PASS_MAX_DELAY_MS = 60_000;

export interface SweepOptions {
  requests: ApprovalRequestStore;
  /** 0: never delete. */
  retentionSeconds: number;
  intervalSeconds: number;
  /** Appends one audit record; resolves once it is durable. */
  audit: (record: AuditRecord) => Promise<void>;
  /** Whether the audit log is writable now: no pass deletes anything while it is not. */
  auditHealthy: () => boolean;
  warn: (message: string) => void;
  now?: () => number;
}

export interface SweepResult {
  deleted: number;
}

/** What started a pass, as its audit record says. */
export type SweepTrigger = 'timer' | 'api';

export class ApprovalSweep {
  readonly retentionSeconds: number;
  readonly intervalSeconds: number;
  readonly #options: SweepOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The pass running or queued last: passes run one after the other. */
  #tail: Promise<unknown> = Promise.resolve();
  #busy = 0;

  constructor(options: SweepOptions) {
    this.#options = options;
    this.retentionSeconds = options.retentionSeconds;
    this.intervalSeconds = options.intervalSeconds;
    this.#now = options.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.retentionSeconds > 0;
  }

  /** Schedules passes: the first within a minute (or the interval, if shorter), then one an interval after each ends. */
  start(): void {
    if (!this.enabled || this.#stopped) return;
    this.#schedule(Math.min(this.intervalSeconds * 1000, FIRST_PASS_MAX_DELAY_MS));
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // A pass asked for through the API may be running: the timer's waits for the next turn.
      const run = this.#busy > 0 ? Promise.resolve() : this.pass('timer').then(() => undefined, (err: unknown) => {
        this.#options.warn(`sweeping ended approval requests: ${(err as Error).message}`);
      });
      void run.then(() => this.#schedule(this.intervalSeconds * 1000));
    }, delayMs);
    this.#timer.unref();
  }

  /** One pass, after any pass already running in this process (never two at once). */
  pass(trigger: SweepTrigger): Promise<SweepResult> {
    this.#busy++;
    const run = this.#tail.then(() => this.#pass(trigger));
    this.#tail = run.catch(() => undefined);
    return run.finally(() => { this.#busy--; });
  }

  async #pass(trigger: SweepTrigger): Promise<SweepResult> {
    if (this.#stopped) throw new KeyholdError('ERR_SEALED', 'keyhold is stopping');
    if (!this.enabled) return { deleted: 0 };
    // Deleting while the log cannot say so would leave a gap an auditor cannot explain.
    if (!this.#options.auditHealthy()) throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'the audit log is not writable; not sweeping');
    const now = this.#now();
    const cutoff = now - this.retentionSeconds * 1000;
    const progress: SweepProgress = { deleted: 0 };
    let failure: unknown;
    try {
      await this.#options.requests.sweep((record) => (endedAt(record, now) ?? Infinity) <= cutoff, now, progress);
    } catch (err) {
      failure = err;
    }
    if (progress.deleted > 0 || failure !== undefined) await this.#audit(trigger, progress, failure);
    if (failure !== undefined) throw failure;
    return { deleted: progress.deleted };
  }

  #audit(trigger: SweepTrigger, progress: SweepProgress, failure: unknown): Promise<void> {
    const code = failure === undefined ? undefined : isKeyholdError(failure) ? failure.code : 'ERR_INTERNAL';
    return this.#options.audit({
      type: 'response',
      requestId: randomUUID(),
      operation: 'approvals.sweep-pass',
      path: 'sys/approvals/requests',
      outcome: code === undefined ? { status: 200 } : { status: 500, code },
      fields: { approval_sweep_deleted: String(progress.deleted), approval_retention_seconds: String(this.retentionSeconds), approval_sweep_trigger: trigger },
    });
  }

  /** No pass starts from now on; resolves once the one running (if any) has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#tail;
  }
}
