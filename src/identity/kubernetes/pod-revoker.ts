/**
 * Background work: tokens issued to a pod are revoked when the pod is deleted. The pod watch
 * itself runs on every replica (logins read it); this revocation is a unit of its own so that it
 * can run on one replica only (the elected leader), started and stopped as leadership comes and
 * goes. Revoking is idempotent, so two running at once (a leader hand-over) only do work twice.
 */
import type { PodEvents, PodListener } from './pod-events.js';
import type { PodTokenIndex } from './pod-token-index.js';

export class PodRevoker {
  #unsubscribe: (() => void) | undefined;

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
    const listener: PodListener = {
      deleted: (uid) => void this.index.revokePod(uid).catch((err: unknown) => this.log.warn(`revoking tokens of deleted pod ${uid} failed: ${(err as Error).message}`)),
      relisted: (live) => this.#revokeAllBut(live),
    };
    this.#unsubscribe = this.events.subscribe(listener);
    const live = this.events.liveUids();
    if (live) this.#revokeAllBut(live);
  }

  /** Stops revoking; a revocation under way finishes. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  #revokeAllBut(live: ReadonlySet<string>): void {
    void this.index.revokeAllBut(live).catch((err: unknown) => this.log.warn(`pod token resync failed: ${(err as Error).message}`));
  }
}
