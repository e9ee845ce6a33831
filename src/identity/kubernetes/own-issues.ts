/**
 * Pods this replica issued tokens to lately, and the revocation of their tokens when this
 * replica's own pod watch reports them deleted while it does not run the pod revoker (it does not
 * lead). Without it, with several replicas, the leader can see a pod's deletion before this
 * replica has written the pod's index entry, find nothing to revoke, and the token would live on
 * until the next re-list. Every replica watches pods anyway, for logins.
 */
import type { PodEvents } from './pod-events.js';
import type { PodRevoker } from './pod-revoker.js';
import type { PodTokenIndex } from './pod-token-index.js';

/** As long as the pod watch remembers deletions (pod-events.ts): the race is seconds wide. */
const RECENT_MS = 10 * 60_000;

export class OwnIssues {
  readonly #issuedAt = new Map<string, number>();

  constructor(events: PodEvents, index: Pick<PodTokenIndex, 'revokePod'>, revoker: Pick<PodRevoker, 'running'>, log: { warn(message: string): void }) {
    events.subscribe({
      deleted: (uid) => {
        // A running revoker revokes every deleted pod's tokens, these included.
        if (revoker.running || !this.#issuedAt.has(uid)) return;
        this.#issuedAt.delete(uid);
        void index.revokePod(uid).catch((err: unknown) => log.warn(`revoking tokens of deleted pod ${uid} failed: ${(err as Error).message}`));
      },
      relisted: () => undefined,
    });
  }

  /** Called once a token for the pod is written. */
  issued(podUid: string): void {
    const now = Date.now();
    // Deleted first so that the map's order stays the order of the last issue: the oldest are first.
    this.#issuedAt.delete(podUid);
    this.#issuedAt.set(podUid, now);
    for (const [uid, at] of this.#issuedAt) {
      if (now - at <= RECENT_MS) break;
      this.#issuedAt.delete(uid);
    }
  }
}
