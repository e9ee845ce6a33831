/**
 * What keyhold asks kube-apiserver: the JWKS; a list+watch of pods and of service accounts, which
 * answer a login's checks locally and make tokens issued to a pod die with it; and a live GET of
 * the pod or service account only when the watch cannot vouch for it.
 */
import { Agent, request } from 'node:https';
import type { V1ContainerStatus, V1Pod, V1ServiceAccount } from '@kubernetes/client-node';
import { KeyholdError, isKeyholdError } from '../../errors.js';
import { WATCH_ACCESS, accessReview, describeAccess, type Access } from './access.js';
import type { KubernetesAuthConfig } from './types.js';
import { WatchedObjects, type Trimmed, type WatchConnection, type WatchStatus } from './watched-objects.js';

export type WatchedPod = Trimmed & { pod: V1Pod };

const SELF_SUBJECT_ACCESS_REVIEWS = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews';
/** How often the watches' permissions are asked again (see #probeWatchAccess). */
const ACCESS_PROBE_MS = 5000;
/** How long one request to kube-apiserver may take in all: a login's look-up, an access review. */
const REQUEST_DEADLINE_MS = 15_000;
/** A page of the watches' list (500 objects, a few MB): longer, or a slow link could never list. */
const LIST_PAGE_DEADLINE_MS = 60_000;
/**
 * The largest answer read: a page of 500 pods is a few MB. Without a cap, an API URL that streams
 * without end grew one string until the process ran out of memory (or hit V8's string limit, an
 * uncaught RangeError), taking the KMS plugin down with it.
 */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class KubernetesCluster {
  /** What the watches need of a kubeconfig: the server, and how to authenticate (see watched-objects.ts). */
  readonly #watchConnection: WatchConnection;
  /** Kept-alive connections for the per-login GETs: a TLS handshake per login cost more than the GETs themselves. */
  readonly #agent: Agent;
  #calls = 0;
  #cacheHits = 0;
  #pods: WatchedObjects<WatchedPod> | undefined;
  #serviceAccounts: WatchedObjects<Trimmed> | undefined;
  #accessProbe: NodeJS.Timeout | undefined;
  #probing = false;

  constructor(private readonly config: KubernetesAuthConfig) {
    this.#agent = new Agent({ keepAlive: true, maxSockets: 32, ...(config.caPem ? { ca: config.caPem } : {}) });
    const watchAgent = new Agent({ keepAlive: true, ...(config.caPem ? { ca: config.caPem } : {}) });
    this.#watchConnection = {
      getCurrentCluster: () => ({ server: config.apiServerUrl }),
      applyToFetchOptions: async () => ({ agent: watchAgent, headers: config.reviewerJwt ? { authorization: `Bearer ${config.reviewerJwt}` } : {} }),
      close: () => watchAgent.destroy(),
    };
  }

  /** GET a JSON object from kube-apiserver; undefined for 404. `count`: a login's live look-up (reported per login). */
  #getJson<T>(path: string, accept = 'application/json', count = true, deadlineMs = REQUEST_DEADLINE_MS): Promise<T | undefined> {
    if (count) this.#calls++;
    return this.#requestJson<T>('GET', path, accept, undefined, deadlineMs);
  }

  /** One JSON request as the reviewer; undefined for 404. A refusal's HTTP status is in `details.status`. */
  #requestJson<T>(method: 'GET' | 'POST', path: string, accept = 'application/json', payload?: unknown, deadlineMs = REQUEST_DEADLINE_MS): Promise<T | undefined> {
    const url = new URL(path, this.config.apiServerUrl);
    const sent = payload === undefined ? undefined : JSON.stringify(payload);
    const headers: Record<string, string> = { accept, ...(this.config.reviewerJwt ? { authorization: `Bearer ${this.config.reviewerJwt}` } : {}), ...(sent ? { 'content-type': 'application/json' } : {}) };
    return new Promise((resolve, reject) => {
      // Settles once: the first failure wins, and the request is torn down with it.
      const fail = (why: string) => {
        reject(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver unreachable: ${why}`));
        req.destroy();
      };
      const req = request(url, { method, agent: this.#agent, headers, timeout: 5000 }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_RESPONSE_BYTES) fail(`answer for ${url.pathname} larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB`);
          else chunks.push(d);
        });
        // A connection cut mid-answer: without this the promise never settled (no 'end', and the request emits no error once answered).
        res.on('error', (err) => fail(err.message));
        res.on('end', () => {
          if (res.statusCode === 404) return resolve(undefined);
          if (res.statusCode !== 200 && res.statusCode !== 201) return reject(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver answered ${res.statusCode} for ${url.pathname}`, { details: { status: res.statusCode } }));
          try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T); } catch { reject(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver sent invalid JSON for ${url.pathname}`)); }
        });
      });
      // `timeout` is per idle socket only: a server sending a byte every few seconds would hold a
      // login, or a configuration write, for ever. The whole answer must come within the deadline.
      const deadline = setTimeout(() => fail(`no complete answer for ${url.pathname} within ${deadlineMs / 1000} s`), deadlineMs);
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => reject(err instanceof KeyholdError ? err : new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver unreachable: ${err.message}`)));
      req.end(sent);
    });
  }

  /**
   * Which of `wanted` the reviewer identity may not do, named as "verb resource" (one
   * SelfSubjectAccessReview each, in parallel). Throws ERR_UPSTREAM_UNAVAILABLE (with the status
   * in details) when the reviews themselves cannot be made.
   */
  async deniedAccess(wanted: readonly Access[]): Promise<string[]> {
    const answers = await Promise.all(wanted.map(async (access) => {
      const review = await this.#requestJson<{ status?: { allowed?: boolean } }>('POST', SELF_SUBJECT_ACCESS_REVIEWS, 'application/json', accessReview(access));
      if (!review) throw new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', 'kube-apiserver does not serve SelfSubjectAccessReview (authorization.k8s.io/v1)', { details: { status: 404 } });
      return review.status?.allowed === true ? undefined : describeAccess(access);
    }));
    return answers.filter((a): a is string => a !== undefined);
  }

  /**
   * An open watch outlives a revoked permission (RBAC is checked when a request starts), so the
   * loss would only show at the watch's next restart, minutes later. Asking every few seconds
   * makes a revoked `list` or `watch` untrust the copy at once: pod-bound logins are then refused
   * and health says why. A review that fails is ignored here (the watch notices an outage
   * itself), except a 401: kube-apiserver no longer accepts reviewer_jwt (expired, or its service
   * account deleted), which an open watch would likewise only show at its restart.
   */
  async #probeWatchAccess(): Promise<void> {
    const kinds = [['pods', this.#pods], ['serviceaccounts', this.#serviceAccounts]] as const;
    // One probe at a time: a slow kube-apiserver must not collect a queue of them.
    if (this.#probing || !kinds.some(([, watched]) => watched?.synced)) return;
    this.#probing = true;
    let denied: string[] = [];
    try {
      denied = await this.deniedAccess(WATCH_ACCESS);
    } catch (err) {
      if (isKeyholdError(err) && err.details?.status === 401) {
        for (const [, watched] of kinds) watched?.invalidate('kube-apiserver no longer accepts reviewer_jwt (expired or revoked); configure a new one');
      }
    } finally {
      this.#probing = false;
    }
    for (const [resource, watched] of kinds) {
      const lost = denied.filter((d) => d.endsWith(` ${resource}`));
      if (lost.length > 0) watched?.invalidate(`the reviewer identity may no longer ${lost.join(', ')} (cluster-wide)`);
    }
  }

  /** The issuer's JWKS as served by kube-apiserver (`/openid/v1/jwks`). */
  async jwks(): Promise<unknown> {
    // Served as application/jwk-set+json: asking for plain JSON only gets 406.
    const jwks = await this.#getJson<unknown>('/openid/v1/jwks', 'application/jwk-set+json, application/json');
    if (jwks === undefined) throw new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', 'kube-apiserver serves no /openid/v1/jwks (is --service-account-jwks-uri set?)');
    return jwks;
  }

  /**
   * The pod, or undefined when it does not exist. Answered from the watch when it holds this pod
   * with the uid the token names; otherwise (not seen yet, another uid, watch down) by a live GET,
   * which has the last word on "absent" and "replaced".
   */
  async pod(namespace: string, name: string, expectedUid: string): Promise<V1Pod | undefined> {
    const watched = this.#pods?.get(namespace, name);
    if (watched?.uid === expectedUid) {
      this.#cacheHits++;
      return watched.pod;
    }
    return this.#getJson<V1Pod>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
  }

  /** The service account's uid, or undefined when it does not exist; the watch answers as for pods. */
  async serviceAccountUid(namespace: string, name: string, expectedUid: string): Promise<string | undefined> {
    const watched = this.#serviceAccounts?.get(namespace, name);
    if (watched?.uid === expectedUid) {
      this.#cacheHits++;
      return watched.uid;
    }
    const live = await this.#getJson<V1ServiceAccount>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`);
    return live?.metadata?.uid;
  }

  /** Stops the watches and closes kept-alive connections. */
  close(): void {
    clearInterval(this.#accessProbe);
    this.#pods?.stop();
    this.#serviceAccounts?.stop();
    this.#watchConnection.close();
    this.#agent.destroy();
  }

  /** Every object at `path`, page by page (limit 500), with the list's resourceVersion. Not a login call. */
  async #listAll(path: string): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const items: unknown[] = [];
    let resourceVersion: string | undefined;
    let next: string | undefined = '';
    while (next !== undefined) {
      const page: KubeList | undefined = await this.#getJson<KubeList>(`${path}?limit=500${next ? `&continue=${encodeURIComponent(next)}` : ''}`, 'application/json', false, LIST_PAGE_DEADLINE_MS);
      if (!page) throw new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver has no ${path}`);
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata?.resourceVersion;
      next = page.metadata?.continue || undefined;
    }
    return { items, resourceVersion };
  }

  /**
   * Starts watching pods and service accounts: logins then read them locally (see watched-objects.ts).
   * onPodDeleted fires for every pod that goes away, onPodsRelisted with the live pod uids after
   * each (re)list, so deletions missed while disconnected are still acted on.
   */
  startWatches(handlers: { onPodDeleted(uid: string): void; onPodsRelisted(liveUids: ReadonlySet<string>): void; onError(err: Error): void }): void {
    this.#pods = new WatchedObjects(this.#watchConnection, { path: '/api/v1/pods', list: () => this.#listAll('/api/v1/pods'), trim: trimPod },
      { deleted: (item) => handlers.onPodDeleted(item.uid), relisted: handlers.onPodsRelisted, error: (err) => handlers.onError(err) });
    this.#serviceAccounts = new WatchedObjects(this.#watchConnection, { path: '/api/v1/serviceaccounts', list: () => this.#listAll('/api/v1/serviceaccounts'), trim: trimObject },
      { error: (err) => handlers.onError(err) });
    this.#pods.start();
    this.#serviceAccounts.start();
    this.#accessProbe = setInterval(() => void this.#probeWatchAccess(), ACCESS_PROBE_MS);
    this.#accessProbe.unref();
  }

  /** Whether the pod watch is trusted: only then can a pod-bound token be promised to die with its pod. */
  podsSynced(): boolean {
    return this.#pods?.synced === true;
  }

  /** The uids of the pods that exist, or undefined while the pod watch is not trusted. */
  livePodUids(): ReadonlySet<string> | undefined {
    return this.#pods?.uids();
  }

  watchStatus(): { pods: WatchStatus | undefined; serviceAccounts: WatchStatus | undefined; liveGets: number; cacheHits: number } {
    return { pods: this.#pods?.status(), serviceAccounts: this.#serviceAccounts?.status(), liveGets: this.#calls, cacheHits: this.#cacheHits };
  }
}

interface KubeList {
  items?: unknown[];
  metadata?: { resourceVersion?: string; continue?: string };
}

interface RawObject {
  metadata?: { name?: unknown; namespace?: unknown; uid?: unknown; deletionTimestamp?: unknown };
}

function trimObject(object: unknown): Trimmed | undefined {
  const m = (object as RawObject | undefined)?.metadata;
  if (typeof m?.name !== 'string' || typeof m.namespace !== 'string' || typeof m.uid !== 'string') return undefined;
  return { namespace: m.namespace, name: m.name, uid: m.uid };
}

/** What a login reads of a pod: identity, service account, deletion, and each container's image and imageID. */
function trimPod(object: unknown): WatchedPod | undefined {
  const base = trimObject(object);
  if (!base) return undefined;
  const pod = object as V1Pod;
  const containers = (list: Array<{ name: string; image?: string }> | undefined) => list?.map((c) => ({ name: c.name, image: c.image }));
  const statuses = (list: Array<{ name: string; imageID?: string }> | undefined) => list?.map((c) => ({ name: c.name, imageID: c.imageID })) as V1ContainerStatus[] | undefined;
  return {
    ...base,
    pod: {
      metadata: { name: base.name, namespace: base.namespace, uid: base.uid, ...(pod.metadata?.deletionTimestamp ? { deletionTimestamp: pod.metadata.deletionTimestamp } : {}) },
      spec: {
        ...(pod.spec?.serviceAccountName ? { serviceAccountName: pod.spec.serviceAccountName } : {}),
        containers: containers(pod.spec?.containers) ?? [],
        initContainers: containers(pod.spec?.initContainers),
        ephemeralContainers: containers(pod.spec?.ephemeralContainers),
      },
      status: {
        containerStatuses: statuses(pod.status?.containerStatuses),
        initContainerStatuses: statuses(pod.status?.initContainerStatuses),
        ephemeralContainerStatuses: statuses(pod.status?.ephemeralContainerStatuses),
      },
    },
  };
}
