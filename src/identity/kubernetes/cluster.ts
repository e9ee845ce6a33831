/**
 * What keyhold asks kube-apiserver during a login (and nothing else): the JWKS, one pod, one
 * service account; plus a watch of pods so tokens issued to a pod die with it.
 */
import { Agent, request } from 'node:https';
import { CoreV1Api, KubeConfig, Watch, type V1Pod, type V1ServiceAccount } from '@kubernetes/client-node';
import { KeyholdError } from '../../errors.js';
import type { KubernetesAuthConfig } from './types.js';

export class KubernetesCluster {
  readonly #core: CoreV1Api;
  readonly #kubeConfig: KubeConfig;
  /** Kept-alive connections for the per-login GETs: a TLS handshake per login cost more than the GETs themselves. */
  readonly #agent: Agent;
  #calls = 0;

  constructor(private readonly config: KubernetesAuthConfig) {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'cluster', server: config.apiServerUrl, ...(config.caPem ? { caData: Buffer.from(config.caPem).toString('base64') } : {}), skipTLSVerify: false }],
      users: [{ name: 'keyhold', ...(config.reviewerJwt ? { token: config.reviewerJwt } : {}) }],
      contexts: [{ name: 'keyhold', cluster: 'cluster', user: 'keyhold' }],
      currentContext: 'keyhold',
    });
    this.#kubeConfig = kc;
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#agent = new Agent({ keepAlive: true, maxSockets: 32, ...(config.caPem ? { ca: config.caPem } : {}) });
  }

  /** GET a JSON object from kube-apiserver; undefined for 404. */
  #getJson<T>(path: string, accept = 'application/json'): Promise<T | undefined> {
    this.#calls++;
    const url = new URL(path, this.config.apiServerUrl);
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'GET', agent: this.#agent, headers: { accept, ...(this.config.reviewerJwt ? { authorization: `Bearer ${this.config.reviewerJwt}` } : {}) }, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { body += d; });
        res.on('end', () => {
          if (res.statusCode === 404) return resolve(undefined);
          if (res.statusCode !== 200) return reject(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver answered ${res.statusCode} for ${url.pathname}`));
          try { resolve(JSON.parse(body) as T); } catch { reject(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver sent invalid JSON for ${url.pathname}`)); }
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => reject(err instanceof KeyholdError ? err : new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `kube-apiserver unreachable: ${err.message}`)));
      req.end();
    });
  }

  /** API-server calls made (for metrics and the bench: a login costs two, one pod and one service account). */
  get calls(): number {
    return this.#calls;
  }

  /** The issuer's JWKS as served by kube-apiserver (`/openid/v1/jwks`). */
  async jwks(): Promise<unknown> {
    // Served as application/jwk-set+json: asking for plain JSON only gets 406.
    const jwks = await this.#getJson<unknown>('/openid/v1/jwks', 'application/jwk-set+json, application/json');
    if (jwks === undefined) throw new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', 'kube-apiserver serves no /openid/v1/jwks (is --service-account-jwks-uri set?)');
    return jwks;
  }

  /** The pod, or undefined when it does not exist. */
  async pod(namespace: string, name: string): Promise<V1Pod | undefined> {
    return this.#getJson<V1Pod>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
  }

  async serviceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined> {
    return this.#getJson<V1ServiceAccount>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`);
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }

  /**
   * Calls onDeleted(uid) for every pod deletion until stopped; re-establishes the watch when it
   * ends (timeouts, apiserver restarts). onResync lists the live pod uids after each (re)start, so
   * deletions missed while the watch was down are still acted on.
   */
  watchPodDeletions(onDeleted: (uid: string) => void, onResync: (liveUids: Set<string>) => void, onError: (err: Error) => void): { stop(): void } {
    let stopped = false;
    let abort: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    const start = async () => {
      if (stopped) return;
      try {
        const list = await this.#core.listPodForAllNamespaces({});
        onResync(new Set(list.items.map((p) => p.metadata?.uid).filter((u): u is string => typeof u === 'string')));
        abort = await new Watch(this.#kubeConfig).watch('/api/v1/pods', { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
          (type: string, pod: V1Pod) => {
            if (type === 'DELETED' && pod.metadata?.uid) onDeleted(pod.metadata.uid);
          },
          (err: unknown) => {
            if (err && !stopped) onError(err as Error);
            if (!stopped) timer = setTimeout(() => void start(), err ? 2000 : 0);
          });
      } catch (err) {
        onError(err as Error);
        if (!stopped) timer = setTimeout(() => void start(), 5000);
      }
    };
    void start();
    return {
      stop() {
        stopped = true;
        if (timer) clearTimeout(timer);
        abort?.abort();
      },
    };
  }
}

