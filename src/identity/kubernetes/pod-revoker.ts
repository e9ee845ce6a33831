/**
 * Background work: tokens issued to a pod are revoked when the pod is deleted. The pod watch
 * itself runs on every replica (logins read it); this revocation is a unit of its own so that it
 * can run on one replica only (the elected leader), started and stopped as leadership comes and
 * goes. Revoking is idempotent, so two running at once (a leader hand-over) only do work twice.
 */
import type { PodEvents } from './pod-events.js';
import type { PodTokenIndex } from './pod-token-index.js';

export class PodRevoker {
  /** Its name as a background job. */
  readonly name = 'kubernetes-pod-revocation';
  #unsubscribe: (() => void) | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly events: PodEvents, private readonly index: Pick<PodTokenIndex, 'revokePod' | 'revokeAllBut'>, private readonly log: { warn(message: string): void }) {}

  get running(): boolean {
    return this.#unsubscribe !== undefined;
  }

  /**
   * Revokes the tokens of each pod deleted from now on, and catches up at once on pods deleted
   * while no revoker ran here (before this replica became leader): those the watch reported lately,
   * and every indexed pod the synced watch no longer holds (while it is not synced, its next list
   * reports them).
   */
  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.events.subscribe({
      deleted: (uid) => this.#revokePod(uid),
      relisted: (live) => this.#revokeAllBut(live),
    });
    for (const uid of this.events.recentlyDeleted()) this.#revokePod(uid);
    const live = this.events.liveUids();
    if (live) this.#revokeAllBut(live);
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

  #revokePod(uid: string): void {
    this.#track(this.index.revokePod(uid), `revoking tokens of deleted pod ${uid} failed`);
  }

  #revokeAllBut(live: ReadonlySet<string>): void {
    this.#track(this.index.revokeAllBut(live), 'pod token resync failed');
  }

  #track(work: Promise<unknown>, failure: string): void {
    const done: Promise<void> = work.then(() => undefined, (err: unknown) => this.log.warn(`${failure}: ${(err as Error).message}`)).finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
  }
}
