/**
 * List + watch until stopped, on @kubernetes/client-node's Watch: the loop the server's endpoint
 * ConfigMap watch and the operator (HSMClusters, nodes) share. client-node's informer is not used:
 * it stops for good on an error (the caller must restart it) and keeps a cache neither user needs.
 *
 * Only this module and its callers load client-node, and they are loaded lazily (open.ts imports
 * endpoint-configmap.ts only for hsm.endpoints.configMap; the CLI imports the operator only for
 * `keyhold operator run`).
 */
import type { KubeConfig } from '@kubernetes/client-node';
// The watch alone, not the package index (see src/identity/kubernetes/watched-objects.ts).
import { Watch } from '@kubernetes/client-node/dist/watch.js';

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export interface ListWatchHandlers<T> {
  /** The full list: after the first list and after every re-list (a lost or expired watch). */
  onList(items: T[]): void;
  onEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: T): void;
  /** Every failed list or watch; the loop goes on after a pause. */
  onError(err: Error): void;
}

export interface ListWatchOptions {
  /** Query parameters of both the list and the watch, e.g. fieldSelector (the caller's list applies them too). */
  query?: Record<string, string>;
  /** First pause after a failure; doubles up to maxRetryMs, back to retryMs once events flow again. */
  retryMs?: number;
  maxRetryMs?: number;
  /** The API server ends a watch after this many seconds; the loop then watches again from the last version. */
  timeoutSeconds?: number;
}

/** The HTTP status of a client-node failure: ApiException's `code`, Watch's `statusCode`. */
export function kubeStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const code = typeof e?.code === 'number' ? e.code : e?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** A short message for a client-node failure (ApiException's message carries the whole response body). */
export function kubeMessage(err: unknown): string {
  const status = kubeStatus(err);
  const body = (err as { body?: unknown } | null)?.body;
  let message = (err as Error | null)?.message ?? String(err);
  if (typeof body === 'string') {
    try { message = (JSON.parse(body) as { message?: string }).message ?? message; } catch { /* not JSON */ }
  } else if (body && typeof (body as { message?: unknown }).message === 'string') message = (body as { message: string }).message;
  return `${status ? `HTTP ${status}: ` : ''}${message.split('\n')[0]?.slice(0, 300)}`;
}

/**
 * Lists with `list`, then watches `path` from the list's resourceVersion, again and again, until
 * `signal` aborts (the promise then resolves). A watch the server ends on time is resumed from the
 * last version at once; a failure (an ERROR event such as 410 Gone, a transport error, a silence
 * longer than the server's timeout plus 30 s: a dead connection nobody closed) lists again after a
 * pause (back-off).
 */
export async function listAndWatch<T>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubeList<T>>,
  handlers: ListWatchHandlers<T>,
  signal: AbortSignal,
  options: ListWatchOptions = {},
): Promise<void> {
  const retryMs = options.retryMs ?? 1000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  const timeoutSeconds = options.timeoutSeconds ?? 300;
  let pause = retryMs;
  // The abort listener goes when the pause ends: one left per pause would pile up on the signal
  // (a long outage is many pauses; Node warns of a leak past 10).
  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
  const watch = new Watch(kc);
  while (!signal.aborted) {
    try {
      const listed = await list();
      if (signal.aborted) break;
      handlers.onList(listed.items);
      let resourceVersion = listed.metadata?.resourceVersion;
      // Watch again from where the last one stopped until one fails (then list again).
      while (!signal.aborted) {
        const started = Date.now();
        resourceVersion = await watchOnce(watch, path, { ...options.query, resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) }, (type, object) => {
          pause = retryMs;
          handlers.onEvent(type, object as T);
        }, signal, (timeoutSeconds + 30) * 1000) ?? resourceVersion;
        // A server that closes every watch at once must not get a tight loop of requests.
        if (Date.now() - started < 1000) await sleep(pause);
      }
    } catch (err) {
      if (signal.aborted) break;
      handlers.onError(err as Error);
      await sleep(pause);
      pause = Math.min(pause * 2, maxRetryMs);
    }
  }
}

/** One watch request: resolves with the last resourceVersion seen when the server ends it cleanly; rejects on a failure. */
async function watchOnce(
  watch: Watch,
  path: string,
  query: Record<string, string | undefined>,
  onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown) => void,
  signal: AbortSignal,
  silenceMs: number,
): Promise<string | undefined> {
  let last: string | undefined;
  /** Set once the request is made (settle may run before: an abort, the watchdog). */
  const request: { controller?: AbortController } = {};
  let watchdog: NodeJS.Timeout | undefined;
  let settle!: (err: Error | null) => void;
  let settled = false;
  const ended = new Promise<void>((resolve, reject) => {
    settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      signal.removeEventListener('abort', onAbort);
      request.controller?.abort();
      if (err && !signal.aborted) reject(err);
      else resolve();
    };
  });
  const onAbort = (): void => settle(null);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) settle(null);
  const heard = (): void => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => settle(new Error(`watch ${path}: silent for ${silenceMs / 1000} s`)), silenceMs);
    watchdog.unref();
  };
  heard();
  const params = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const controller = await watch.watch(path, params, (type: string, object: { metadata?: { resourceVersion?: string }; code?: number; message?: string }) => {
    if (settled) return;
    heard();
    if (type === 'ERROR') {
      settle(Object.assign(new Error(`watch ${path}: ${object.message ?? 'error'}`), { statusCode: object.code }));
      return;
    }
    if (object?.metadata?.resourceVersion) last = object.metadata.resourceVersion;
    if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') onEvent(type, object);
  }, (err: unknown) => settle(err ? (err instanceof Error ? err : new Error(String(err))) : null));
  request.controller = controller;
  if (settled) controller.abort();
  await ended;
  return last;
}
