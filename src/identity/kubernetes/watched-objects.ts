/**
 * A live copy of one kind of Kubernetes object across all namespaces: list, then watch from the
 * list's resourceVersion, keeping only the fields keyhold reads (a trimmed pod is a few hundred
 * bytes, not the 5–10 KB the API sends).
 *
 * This is what kube-apiserver itself does to check bound service-account tokens (its token getter
 * reads pods and service accounts from informer caches), so a login checked against this copy is
 * as fresh as a TokenReview. The copy is trusted only while the watch is known to be live: after
 * a watch error, a 410 (history too old) or a silence longer than the watch timeout, `get`
 * answers undefined until a fresh list has been applied and its watch accepted, and callers fall
 * back to a live GET. A 403 on the list or the watch (the reviewer lost `list` or `watch`) is such
 * an error: the copy stays untrusted, listed again every few seconds, until the permission is back.
 */
import type { KubeConfig } from '@kubernetes/client-node';
// The watch alone, not the package index: the index loads every generated API and model, which
// cost the server about 80 MB of RSS (measured: a bare import of the index, 40 → 123 MB).
import { Watch } from '@kubernetes/client-node/dist/watch.js';

/**
 * What client-node's Watch reads of a KubeConfig (the server URL, and fetch options carrying the
 * CA and the bearer token), without building one: KubeConfig would load the whole package.
 */
export interface WatchConnection {
  getCurrentCluster(): { server: string };
  applyToFetchOptions(options: object): Promise<object>;
  close(): void;
}

export interface WatchedKind<T> {
  /** Watch path, e.g. `/api/v1/pods`. */
  path: string;
  /** Lists every object (all namespaces) with the list's resourceVersion. */
  list(): Promise<{ items: unknown[]; resourceVersion: string | undefined }>;
  /** The fields keyhold needs; undefined for an object without namespace, name or uid. */
  trim(object: unknown): T | undefined;
}

export interface Trimmed {
  namespace: string;
  name: string;
  uid: string;
}

export interface WatchEvents<T> {
  /** An object went away: a DELETED event, or absent (or replaced) in a fresh list. */
  deleted?(item: T): void;
  /** A fresh list was applied: the uids that exist now (deletions missed while disconnected are in `deleted` too). */
  relisted?(liveUids: ReadonlySet<string>): void;
  error(err: Error): void;
}

export interface WatchStatus {
  /** True while the copy is trusted (listed and the watch live). */
  synced: boolean;
  /** Why the copy is not trusted, while it is not (the last list or watch failure). */
  error: string | undefined;
  objects: number;
  /** Last resourceVersion seen (list, event or bookmark). */
  resourceVersion: string | undefined;
  /** Lists made: 1 at start, one more after every watch failure. */
  lists: number;
  events: number;
}

export class WatchedObjects<T extends Trimmed> {
  readonly #items = new Map<string, T>();
  #synced = false;
  #lastError: string | undefined = 'not listed yet';
  #stopped = false;
  #resourceVersion: string | undefined;
  #abort: AbortController | undefined;
  #retry: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #lastHeard = 0;
  /** Bumped for every watch started: callbacks of a watch we gave up on are ignored. */
  #generation = 0;
  #lists = 0;
  #events = 0;

  constructor(
    private readonly connection: WatchConnection,
    private readonly kind: WatchedKind<T>,
    private readonly events: WatchEvents<T>,
    /** The server ends each watch after this long; we re-watch from the last resourceVersion (no list). */
    private readonly watchTimeoutSeconds = 300,
  ) {}

  start(): void {
    // A watch that hears nothing (not even its own timeout) for this long is dead, whatever TCP says.
    this.#watchdog = setInterval(() => {
      if (this.#synced && Date.now() - this.#lastHeard > (this.watchTimeoutSeconds + 30) * 1000) this.#fail(new Error(`${this.kind.path} watch went silent`));
    }, 10_000);
    this.#watchdog.unref();
    void this.#list();
  }

  stop(): void {
    this.#stopped = true;
    this.#synced = false;
    this.#generation++;
    clearTimeout(this.#retry);
    clearInterval(this.#watchdog);
    this.#abort?.abort();
  }

  /** Whether the copy is trusted right now (listed, and its watch accepted and live). */
  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Stops trusting the copy now, for a reason found outside the watch (the reviewer's permissions
   * were found gone): an open watch keeps streaming after RBAC changes, until its timeout.
   * Nothing happens while it is already untrusted, so a repeated call cannot postpone the re-list.
   */
  invalidate(reason: string): void {
    if (this.#synced && !this.#stopped) this.#fail(new Error(reason), 5000);
  }

  /** The object as last seen, or undefined when it is absent or the copy cannot be trusted right now. */
  get(namespace: string, name: string): T | undefined {
    return this.#synced ? this.#items.get(`${namespace}/${name}`) : undefined;
  }

  /** The uids of every object, or undefined when the copy cannot be trusted right now. */
  uids(): ReadonlySet<string> | undefined {
    return this.#synced ? new Set([...this.#items.values()].map((item) => item.uid)) : undefined;
  }

  status(): WatchStatus {
    return { synced: this.#synced, error: this.#synced ? undefined : this.#lastError, objects: this.#items.size, resourceVersion: this.#resourceVersion, lists: this.#lists, events: this.#events };
  }

  async #list(): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    try {
      this.#lists++;
      const { items, resourceVersion } = await this.kind.list();
      if (generation !== this.#generation) return;
      const fresh = new Map<string, T>();
      for (const object of items) {
        const item = this.kind.trim(object);
        if (item) fresh.set(`${item.namespace}/${item.name}`, item);
      }
      const gone = [...this.#items].filter(([key, old]) => fresh.get(key)?.uid !== old.uid).map(([, old]) => old);
      this.#items.clear();
      for (const [key, item] of fresh) this.#items.set(key, item);
      this.#resourceVersion = resourceVersion;
      for (const item of gone) this.events.deleted?.(item);
      this.events.relisted?.(new Set([...fresh.values()].map((item) => item.uid)));
      await this.#watch(generation);
      // Trusted only once the watch was accepted too: a reviewer that may list but not watch would
      // otherwise look synced for a moment after every list, and miss every later deletion.
      if (generation === this.#generation) {
        this.#synced = true;
        this.#lastError = undefined;
      }
    } catch (err) {
      if (generation === this.#generation) this.#fail(err as Error, 5000);
    }
  }

  async #watch(generation: number): Promise<void> {
    const startedAt = Date.now();
    this.#lastHeard = startedAt;
    const abort = await new Watch(this.connection as unknown as KubeConfig).watch(
      this.kind.path,
      { resourceVersion: this.#resourceVersion, allowWatchBookmarks: true, timeoutSeconds: this.watchTimeoutSeconds },
      (type: string, object: { metadata?: { resourceVersion?: string }; code?: number; message?: string }) => {
        if (generation !== this.#generation) return;
        this.#lastHeard = Date.now();
        if (type === 'ERROR') {
          // Typically 410 Gone: our resourceVersion fell out of etcd's history. Only a fresh list helps.
          this.#fail(new Error(`${this.kind.path} watch: ${object.code ?? ''} ${object.message ?? 'error event'}`.trim()), 0);
          return;
        }
        this.#events++;
        if (object.metadata?.resourceVersion) this.#resourceVersion = object.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        const item = this.kind.trim(object);
        if (!item) return;
        const key = `${item.namespace}/${item.name}`;
        if (type === 'DELETED') {
          if (this.#items.get(key)?.uid === item.uid) this.#items.delete(key);
          this.events.deleted?.(item);
        } else {
          this.#items.set(key, item);
        }
      },
      (err: unknown) => {
        if (generation !== this.#generation || this.#stopped) return;
        if (err) {
          const status = (err as { statusCode?: number }).statusCode;
          this.#fail(status ? new Error(`${this.kind.path} watch: kube-apiserver answered ${status} ${(err as Error).message}`) : err as Error, 2000);
        }
        else {
          // The server's timeout ended it: carry on from where we are, still in sync. A watch that
          // ends as soon as it starts is not a timeout: pause, so it cannot become a busy loop.
          const again = () => void this.#watch(generation).catch((e: unknown) => this.#fail(e as Error, 2000));
          if (Date.now() - startedAt > 1000) again();
          else this.#retry = setTimeout(again, 1000);
        }
      },
    );
    if (generation === this.#generation) this.#abort = abort;
    else abort.abort();
  }

  /** Stops trusting the copy and lists again after a pause. */
  #fail(err: Error, retryMs = 5000): void {
    this.#synced = false;
    this.#lastError = err.message;
    this.#generation++;
    this.#abort?.abort();
    if (this.#stopped) return;
    this.events.error(err);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#list(), retryMs);
  }
}
