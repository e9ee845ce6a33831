/**
 * The small Kubernetes REST client the HSM endpoint-set watch needs (and the operator reuses):
 * JSON requests and a list+watch stream over node:https. Not client-node's generated clients:
 * loading that package's index costs a server about 80 MB of RSS (see
 * src/identity/kubernetes/watched-objects.ts), and its patch calls hide the content type.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import { KeyholdError } from '../errors.js';

export interface KubeConnection {
  /** https://host:port */
  server: string;
  /** TLS options for the API server: ca, and cert/key for client-certificate users. */
  tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;
  /** Authentication headers, asked again for every request: a projected token is rotated on disk. */
  headers(): Promise<Record<string, string>>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The pod's own service account (KUBERNETES_SERVICE_HOST/PORT, the projected token and CA). */
export function inClusterConnection(dir = SA_DIR): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new KeyholdError('ERR_CONFIG', 'not running in a cluster: KUBERNETES_SERVICE_HOST is not set (give a kubeconfig)');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    tls: { ca: readFileSync(`${dir}/ca.crt`) },
    headers: async () => ({ authorization: `Bearer ${readFileSync(`${dir}/token`, 'utf8').trim()}` }),
  };
}

/**
 * A connection from a kubeconfig file (its current context), through client-node's KubeConfig,
 * loaded only here: exec and auth-provider users work as kubectl does.
 */
export async function kubeconfigConnection(path?: string): Promise<KubeConnection> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KeyholdError('ERR_CONFIG', 'the kubeconfig has no current cluster');
  const base: RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  return {
    server: cluster.server,
    tls: { ca: base.ca, cert: base.cert, key: base.key, ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}) },
    headers: async () => {
      const o: RequestOptions = {};
      await kc.applyToHTTPSOptions(o); // refreshes exec/OIDC tokens
      return Object.fromEntries(Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
    },
  };
}

/** What the client reads of any object; the rest is the caller's to check. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string> };
  [field: string]: unknown;
}

export class KubeApiError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

/** The largest answer read (a list of a few hundred nodes or ConfigMaps). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 15_000;
/** Longer than the watch's timeoutSeconds (300) and the bookmark interval. */
const WATCH_SILENCE_MS = 330_000;

export class KubeApi {
  readonly #agent: Agent;

  constructor(readonly connection: KubeConnection) {
    this.#agent = new Agent({ keepAlive: true, ...connection.tls });
  }

  close(): void {
    this.#agent.destroy();
  }

  /** One JSON request. A non-2xx answer throws KubeApiError with the Status's reason and message. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.connection.headers()) };
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(payload.length);
    }
    const url = new URL(path, this.connection.server);
    return new Promise<T>((resolve, reject) => {
      const req = request(url, { method, headers, agent: this.#agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`${method} ${url.pathname}: answer larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(d);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else {
            const s = (parsed ?? {}) as { reason?: string; message?: string };
            reject(new KubeApiError(status, s.reason ?? '', `${method} ${url.pathname}: HTTP ${status}${s.message ? `: ${s.message}` : ''}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /**
   * Watches `path` (a collection URL, query allowed) from `resourceVersion`: calls `onEvent` for each
   * event until the server ends the stream, `signal` aborts, or an ERROR event arrives (thrown as
   * KubeApiError, 410 when the version is too old). Resolves with the last resourceVersion seen.
   */
  async watch(path: string, resourceVersion: string | undefined, onEvent: (type: string, object: KubeObject) => void, signal: AbortSignal): Promise<string | undefined> {
    const url = new URL(path, this.connection.server);
    url.searchParams.set('watch', '1');
    url.searchParams.set('allowWatchBookmarks', 'true');
    url.searchParams.set('timeoutSeconds', '300');
    if (resourceVersion) url.searchParams.set('resourceVersion', resourceVersion);
    const headers = { accept: 'application/json', ...(await this.connection.headers()) };
    let last = resourceVersion;
    await new Promise<void>((resolve, reject) => {
      if (signal.aborted) { resolve(); return; }
      // Its own agentless request: a watch holds its connection for minutes.
      // A watch that hears nothing (not even a bookmark, sent about every minute) for longer than
      // the server's own timeout is a dead connection nobody closed: give it up and list again.
      const req = request(url, { method: 'GET', headers, ...this.connection.tls, signal, timeout: WATCH_SILENCE_MS }, (res) => {
        if ((res.statusCode ?? 0) !== 200) {
          res.resume();
          reject(new KubeApiError(res.statusCode ?? 0, '', `watch ${url.pathname}: HTTP ${res.statusCode}`));
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buffered += d;
          if (buffered.length > MAX_RESPONSE_BYTES) { req.destroy(new Error('watch event too large')); return; }
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (!line) continue;
            let event: { type?: string; object?: KubeObject & { code?: unknown; reason?: unknown; message?: unknown } };
            try { event = JSON.parse(line); } catch { req.destroy(new Error('watch: not JSON')); return; }
            const object = event.object ?? {};
            if (event.type === 'ERROR') {
              req.destroy(new KubeApiError(Number(object.code) || 500, String(object.reason ?? ''), `watch ${url.pathname}: ${object.message ?? 'error'}`));
              return;
            }
            if (object.metadata?.resourceVersion) last = object.metadata.resourceVersion;
            if (event.type !== 'BOOKMARK') onEvent(event.type ?? '', object);
          }
        });
        res.on('end', () => resolve());
        res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      });
      req.on('timeout', () => req.destroy(new Error(`watch ${url.pathname}: silent for ${WATCH_SILENCE_MS / 1000} s`)));
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      req.end();
    });
    return last;
  }
}

/**
 * List + watch forever (until `signal` aborts): `onList` with the full list, then `onEvent` per
 * change; a failed or expired watch lists again after `retryMs`. `onError` hears every failure.
 */
export async function listAndWatch(api: KubeApi, path: string, handlers: {
  onList(items: KubeObject[]): void;
  onEvent(type: string, object: KubeObject): void;
  onError(err: Error): void;
}, signal: AbortSignal, retryMs = 1000): Promise<void> {
  const pause = () => new Promise<void>((resolve) => {
    const t = setTimeout(resolve, retryMs);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
  while (!signal.aborted) {
    try {
      const list = await api.request<{ items?: KubeObject[]; metadata?: { resourceVersion?: string } }>('GET', path);
      handlers.onList(list.items ?? []);
      let rv = list.metadata?.resourceVersion;
      // Watch again from where the last one stopped until it fails (410 Gone: list again).
      while (!signal.aborted) rv = await api.watch(path, rv, handlers.onEvent, signal);
    } catch (err) {
      if (signal.aborted) break;
      handlers.onError(err as Error);
      await pause();
    }
  }
}
