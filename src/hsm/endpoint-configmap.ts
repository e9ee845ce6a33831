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
import { kubeMessage, listAndWatch } from './kube-watch.js';

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

async function loadKubeConfig(kubeconfig: string | undefined): Promise<{ kc: KubeConfig; api: CoreV1Api }> {
  const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
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
  return { kc, api: kc.makeApiClient(CoreV1Api) };
}

/**
 * Calls `onChange` with the set whenever the ConfigMap's `endpoints.json` changes (and once with
 * the first one read). A missing ConfigMap or an unreadable document is reported to `onError` and
 * changes nothing: the server keeps using the members it has rather than dropping every one. A
 * failed list or a lost watch is reported and tried again with back-off (1 s doubling to 30 s).
 * Resolves after the first list was tried (answered or failed).
 */
export async function watchEndpointConfigMap(
  options: EndpointConfigMapOptions,
  onChange: (set: HsmEndpointSet) => void,
  onError: (err: Error) => void = () => {},
): Promise<EndpointConfigMapWatch> {
  const { namespace, name } = options;
  if (!NAME.test(namespace) || !NAME.test(name)) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap: namespace and name must be Kubernetes object names');
  const { kc, api } = await loadKubeConfig(options.kubeconfig);
  const fieldSelector = `metadata.name=${name}`;
  const where = `ConfigMap ${namespace}/${name}`;
  const abort = new AbortController();
  let current: HsmEndpointSet | undefined;
  let lastText: string | undefined;
  const apply = (object: V1ConfigMap | undefined): void => {
    const text = object?.data?.[ENDPOINTS_KEY];
    if (typeof text !== 'string') {
      onError(new KeyholdError('ERR_CONFIG', `${where} ${object ? `has no ${ENDPOINTS_KEY}` : 'does not exist'}: keeping the current endpoints`));
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
  let firstTried!: () => void;
  const first = new Promise<void>((resolve) => { firstTried = resolve; });
  void listAndWatch<V1ConfigMap>(kc, `/api/v1/namespaces/${namespace}/configmaps`, () => api.listNamespacedConfigMap({ namespace, fieldSelector }), {
    onList: (items) => { apply(items[0]); firstTried(); },
    onEvent: (type, object) => apply(type === 'DELETED' ? undefined : object),
    onError: (err) => { onError(new KeyholdError('ERR_UPSTREAM_UNAVAILABLE', `${where}: ${kubeMessage(err)}`)); firstTried(); },
  }, abort.signal, { query: { fieldSelector }, retryMs: options.retryMs, maxRetryMs: options.maxRetryMs });
  await first;
  return {
    current: () => current,
    stop: () => abort.abort(),
  };
}
