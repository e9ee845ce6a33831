/**
 * The pod watch's news, passed from whichever cluster client the current configuration runs to
 * whoever listens: the pod revoker (pod-revoker.ts, the elected leader only). A configuration
 * change swaps the client beneath; listeners stay subscribed. Every replica also remembers the
 * deletions its watch reported lately, whether or not a revoker listens: a login checks them after
 * its token commit (token-issue.ts), and a revoker starting late catches up on them.
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
  /** Pods the watch reported deleted in the last ten minutes. */
  recentlyDeleted(): Iterable<string>;
}

const RECENT_MS = 10 * 60_000;

export class PodEventHub implements PodEvents, PodListener {
  readonly #listeners = new Set<PodListener>();
  readonly #deletedAt = new Map<string, number>();

  constructor(private readonly currentLiveUids: () => ReadonlySet<string> | undefined) {}

  subscribe(listener: PodListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  liveUids(): ReadonlySet<string> | undefined {
    return this.currentLiveUids();
  }

  recentlyDeleted(): Iterable<string> {
    return [...this.#deletedAt.keys()];
  }

  /** Whether the watch reported this pod deleted in the last ten minutes. */
  deletedLately(uid: string): boolean {
    return this.#deletedAt.has(uid);
  }

  deleted(uid: string): void {
    const now = Date.now();
    this.#deletedAt.set(uid, now);
    for (const [u, at] of this.#deletedAt) if (now - at > RECENT_MS) this.#deletedAt.delete(u);
    for (const listener of this.#listeners) listener.deleted(uid);
  }

  relisted(liveUids: ReadonlySet<string>): void {
    for (const listener of this.#listeners) listener.relisted(liveUids);
  }
}
