/**
 * The pod watch's news, passed from whichever cluster client the current configuration runs to
 * whoever listens: the logins' record of recent deletions (every replica) and the pod revoker
 * (pod-revoker.ts, the elected leader only). A configuration change swaps the client beneath;
 * listeners stay subscribed.
 */

export interface PodListener {
  /** A pod went away (a DELETED event, or absent from a re-list). */
  deleted(uid: string): void;
  /** A fresh list was applied: the pod uids that exist now. */
  relisted(liveUids: ReadonlySet<string>): void;
}

export interface PodEvents {
  subscribe(listener: PodListener): () => void;
  /** The uids of every pod, from the pod watch; undefined while the watch is not synced. */
  liveUids(): ReadonlySet<string> | undefined;
}

export class PodEventHub implements PodEvents, PodListener {
  readonly #listeners = new Set<PodListener>();

  constructor(private readonly currentLiveUids: () => ReadonlySet<string> | undefined) {}

  subscribe(listener: PodListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  liveUids(): ReadonlySet<string> | undefined {
    return this.currentLiveUids();
  }

  deleted(uid: string): void {
    for (const listener of this.#listeners) listener.deleted(uid);
  }

  relisted(liveUids: ReadonlySet<string>): void {
    for (const listener of this.#listeners) listener.relisted(liveUids);
  }
}

/**
 * Pod uids the watch saw deleted in the last ten minutes: closes the race between a login's pod
 * check and its index write without another GET (token-issue.ts).
 */
export class RecentPodDeletions implements PodListener {
  readonly #deletedAt = new Map<string, number>();

  deleted(uid: string): void {
    const now = Date.now();
    this.#deletedAt.set(uid, now);
    for (const [u, at] of this.#deletedAt) if (now - at > 10 * 60_000) this.#deletedAt.delete(u);
  }

  relisted(): void {
    // A re-list reports each pod it found gone through deleted() as well.
  }

  has(uid: string): boolean {
    return this.#deletedAt.has(uid);
  }
}
