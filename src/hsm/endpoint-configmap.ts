/**
 * The server's second way to learn its HSM endpoint set (the first is the mounted file): watch the
 * ConfigMap the operator maintains (`hsm.endpoints.configMap {namespace, name, kubeconfig?}`). A
 * watch sees a change in about a second; a mounted ConfigMap file lags by the kubelet's sync period
 * (up to a minute or more). Needs get/list/watch on that one ConfigMap (a Role with resourceNames).
 *
 * On @kubernetes/client-node (KubeConfig, CoreV1Api, Watch), imported here only: open.ts loads this
 * module when the configuration names a ConfigMap, so a server without one never loads the package
 * (its index costs about 80 MB of RSS, see src/identity/kubernetes/watched-objects.ts).
 */
import type { CoreV1Api, KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { KeyholdError } from '../errors.js';
import { ENDPOINTS_KEY, parseEndpointSet, type HsmEndpointSet } from './endpoint-set.js';

export interface EndpointConfigMapOptions {
  namespace: string;
  name: string;
  /** A kubeconfig file (its current context); without it, the pod's service account (in-cluster). */
  kubeconfig?: string;
  /** First pause after a failed list or a lost watch (doubles up to maxRetryMs; default 1 s). */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface EndpointConfigMapWatch {
  /** The last good set, undefined before the first one arrives. */
  current(): HsmEndpointSet | undefined;
  stop(): void;
}

/** What the server's service account needs (a Role in the ConfigMap's namespace): that one ConfigMap, read and watched. */
export function endpointConfigMapRules(name: string): { apiGroups: string[]; resources: string[]; resourceNames: string[]; verbs: string[] }[] {
  return [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [name], verbs: ['get', 'list', 'watch'] }];
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** The server ends a watch after this; a reconnect then lists again (cheap: one object). */
const WATCH_TIMEOUT_SECONDS = 300;
/** A watch that hears nothing, not even a bookmark (about every minute), for this long is a dead connection nobody closed. */
const WATCH_SILENCE_MS = (WATCH_TIMEOUT_SECONDS + 30) * 1000;

/** The status code of a client-node failure (ApiException.code, Watch's error.statusCode), if any. */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const code = typeof e?.code === 'number' ? e.code : e?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

async function loadKubeConfig(kubeconfig: string | undefined): Promise<{ kc: KubeConfig; api: CoreV1Api; Watch: typeof import('@kubernetes/client-node').Watch }> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else {
      if (!process.env.KUBERNETES_SERVICE_HOST) throw new Error('not running in a cluster (KUBERNETES_SERVICE_HOST is not set): give hsm.endpoints.configMap.kubeconfig');
      kc.loadFromCluster();
    }
  } catch (cause) {
    throw new KeyholdError('ERR_CONFIG', `hsm.endpoints.configMap: ${(cause as Error).message}`, { cause });
  }
  if (!kc.getCurrentCluster()) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap: the kubeconfig has no current cluster');
  return { kc, api: kc.makeApiClient(k8s.CoreV1Api), Watch: k8s.Watch };
}

/**
 * Calls `onChange` with the set whenever the ConfigMap's `endpoints.json` changes (and once with
 * the first one read). A missing ConfigMap or an unreadable document is reported to `onError` and
 * changes nothing: the server keeps using the members it has rather than dropping every one. A
 * failed list or a lost watch is reported and tried again with back-off (1 s doubling to 30 s).
 */
export async function watchEndpointConfigMap(
  options: EndpointConfigMapOptions,
  onChange: (set: HsmEndpointSet) => void,
  onError: (err: Error) => void = () => {},
): Promise<EndpointConfigMapWatch> {
  const { namespace, name } = options;
  if (!NAME.test(namespace) || !NAME.test(name)) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap: namespace and name must be Kubernetes object names');
  const { kc, api, Watch } = await loadKubeConfig(options.kubeconfig);
  const retryMs = options.retryMs ?? 1000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  const fieldSelector = `metadata.name=${name}`;
  const path = `/api/v1/namespaces/${namespace}/configmaps`;

  let stopped = false;
  let current: HsmEndpointSet | undefined;
  let lastText: string | undefined;
  let pause = retryMs;
  let timer: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let controller: AbortController | undefined;
  /** Bumped per connection: callbacks of a watch given up on are ignored. */
  let generation = 0;

  const apply = (object: V1ConfigMap | undefined): void => {
    const text = object?.data?.[ENDPOINTS_KEY];
    if (typeof text !== 'string') {
      onError(new KeyholdError('ERR_CONFIG', `ConfigMap ${namespace}/${name} ${object ? `has no ${ENDPOINTS_KEY}` : 'does not exist'}: keeping the current endpoints`));
      return;
    }
    if (text === lastText) return;
    try {
      const set = parseEndpointSet(text);
      lastText = text;
      current = set;
      onChange(set);
    } catch (err) {
      onError(err as Error);
    }
  };

  const again = (err: Error | undefined): void => {
    if (stopped) return;
    generation++;
    clearTimeout(watchdog);
    controller?.abort();
    controller = undefined;
    if (err) onError(err);
    const wait = err ? pause : 0;
    if (err) pause = Math.min(pause * 2, maxRetryMs);
    timer = setTimeout(() => void connect(), wait);
    timer.unref();
  };

  const connect = async (): Promise<void> => {
    const mine = ++generation;
    let resourceVersion: string | undefined;
    try {
      const list = await api.listNamespacedConfigMap({ namespace, fieldSelector });
      if (stopped || mine !== generation) return;
      apply(list.items[0]);
      resourceVersion = list.metadata?.resourceVersion;
    } catch (err) {
      if (mine === generation) again(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `listing ConfigMap ${namespace}/${name} failed${statusOf(err) ? ` (HTTP ${statusOf(err)})` : ''}: ${(err as Error).message}`));
      return;
    }
    const heard = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => { if (mine === generation) again(new Error(`ConfigMap ${namespace}/${name} watch silent for ${WATCH_SILENCE_MS / 1000} s`)); }, WATCH_SILENCE_MS);
      watchdog.unref();
    };
    heard();
    const done = (err: unknown): void => {
      if (mine !== generation) return;
      // A watch the server ended on time (or a clean close) reconnects at once; a failure waits.
      again(err ? new Error(`ConfigMap ${namespace}/${name} watch lost${statusOf(err) ? ` (HTTP ${statusOf(err)})` : ''}: ${(err as Error).message ?? String(err)}`) : undefined);
    };
    controller = await new Watch(kc).watch(path, { fieldSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_SECONDS }, (type: string, object: unknown) => {
      if (mine !== generation) return;
      heard();
      pause = retryMs; // events flow: the next failure starts the back-off afresh
      if (type === 'ADDED' || type === 'MODIFIED') apply(object as V1ConfigMap);
      else if (type === 'DELETED') apply(undefined);
      else if (type === 'ERROR') {
        // 410 Gone (history too old) and the rest: list again.
        const status = object as { code?: number; message?: string };
        done(Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code }));
      }
    }, done);
    if (mine !== generation || stopped) controller.abort();
  };

  await connect();
  return {
    current: () => current,
    stop: () => {
      stopped = true;
      generation++;
      clearTimeout(timer);
      clearTimeout(watchdog);
      controller?.abort();
    },
  };
}
