/**
 * The one pass an approved request gets through the quorum gate. Executing re-dispatches the
 * stored request inside this process; the gate lets it through only with a marker it can check:
 * a fresh 256-bit nonce per execution, held only in this map (never stored, never logged), used at
 * most once and only for the exact operation, method, URL and parameters that were approved. A
 * client cannot forge one; a marker that is not in the map is refused.
 */
import { randomBytes } from 'node:crypto';

/** The header carrying the marker on the re-dispatched request. */
export const EXECUTION_HEADER = 'x-keyhold-approval-execution';

export interface PendingExecution {
  id: string;
  operation: string;
  method: string;
  url: string;
  paramsSha256: string;
  /** Set by the gate once approved → executed is committed (the action then runs). */
  began: boolean;
}

export class Executions {
  readonly #pending = new Map<string, { execution: PendingExecution; used: boolean }>();

  /** A marker for one execution; `release` it when the re-dispatched request has been answered. */
  issue(execution: Omit<PendingExecution, 'began'>): string {
    const nonce = randomBytes(32).toString('base64url');
    this.#pending.set(nonce, { execution: { ...execution, began: false }, used: false });
    return nonce;
  }

  /** The execution a marker stands for, once: a second use of the same marker finds nothing. */
  take(nonce: string): PendingExecution | undefined {
    const entry = this.#pending.get(nonce);
    if (!entry || entry.used) return undefined;
    entry.used = true;
    return entry.execution;
  }

  /** Voids the marker; what became of the execution. */
  release(nonce: string): PendingExecution | undefined {
    const entry = this.#pending.get(nonce);
    this.#pending.delete(nonce);
    return entry?.execution;
  }
}
