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
}

export class Executions {
  readonly #pending = new Map<string, PendingExecution>();

  /** A marker for one execution; `release` it when the re-dispatched request has been answered. */
  issue(execution: PendingExecution): string {
    const nonce = randomBytes(32).toString('base64url');
    this.#pending.set(nonce, execution);
    return nonce;
  }

  /** The execution a marker stands for, consumed: a second use of the same marker finds nothing. */
  take(nonce: string): PendingExecution | undefined {
    const execution = this.#pending.get(nonce);
    this.#pending.delete(nonce);
    return execution;
  }

  release(nonce: string): void {
    this.#pending.delete(nonce);
  }
}
