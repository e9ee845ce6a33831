/**
 * Background work: tokens issued to a pod are revoked when the pod is deleted. The pod watch
 * itself runs on every replica (logins read it); this revocation is a unit of its own so that it
 * can run on one replica only (the elected leader), started and stopped as leadership comes and
 * goes. Revoking is idempotent, so two running at once (a leader hand-over) only do work twice.
 */
import type { PodEvents } from './pod-events.js';
import type { PodTokenIndex } from './pod-token-index.js';

export class PodRevoker {
  #unsubscribe: (() => void) | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly events: PodEvents, private readonly index: Pick<PodTokenIndex, 'revokePod' | 'revokeAllBut'>, private readonly log: { warn(message: string): void }) {}

  get running(): boolean {
    return this.#unsubscribe !== undefined;
  }

  /**
   * Revokes the tokens of each pod deleted from now on, and at once those of indexed pods the pod
   * watch no longer holds: pods deleted while no revoker ran (before this replica became leader).
   * While the watch is not synced that waits for its next list, which reports them.
   */
  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.events.subscribe({
      deleted: (uid) => this.#track(this.index.revokePod(uid), `revoking tokens of deleted pod ${uid} failed`),
      relisted: (live) => this.#track(this.index.revokeAllBut(live), 'pod token resync failed'),
    });
    const live = this.events.liveUids();
    if (live) this.#track(this.index.revokeAllBut(live), 'pod token resync failed');
  }

  /** Stops revoking; resolves once the revocations under way have finished. */
  stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    return this.idle();
  }

  /** Resolves once every revocation started so far has finished (failures are logged, not thrown). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  #track(work: Promise<unknown>, failure: string): void {
    const done: Promise<void> = work.then(() => undefined, (err: unknown) => this.log.warn(`${failure}: ${(err as Error).message}`)).finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
  }
}
