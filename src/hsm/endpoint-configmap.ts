/**
 * The server's second way to learn its HSM endpoint set (the first is the mounted file): watch the
 * ConfigMap the operator maintains (`hsm.endpoints.configMap {namespace, name}`). A watch sees a
 * change in about a second; a mounted ConfigMap file lags by the kubelet's sync period (up to a
 * minute or more). Needs get/list/watch on that one ConfigMap (a Role with resourceNames).
 */
import { KeyholdError } from '../errors.js';
import { ENDPOINTS_KEY, parseEndpointSet, type HsmEndpointSet } from './endpoint-set.js';
import { KubeApi, type KubeObject, inClusterConnection, kubeconfigConnection, listAndWatch, type KubeConnection } from './kube-api.js';

export interface EndpointConfigMapOptions {
  namespace: string;
  name: string;
  /** A kubeconfig file; else `inCluster` (the pod's service account); else `connection`. */
  kubeconfig?: string;
  inCluster?: boolean;
  connection?: KubeConnection;
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

/**
 * Calls `onChange` with the set whenever the ConfigMap's `endpoints.json` changes (and once with
 * the first one read). A missing ConfigMap or an unreadable document is reported to `onError` and
 * changes nothing: the server keeps using the members it has rather than dropping every one.
 */
export async function watchEndpointConfigMap(
  options: EndpointConfigMapOptions,
  onChange: (set: HsmEndpointSet) => void,
  onError: (err: Error) => void = () => {},
): Promise<EndpointConfigMapWatch> {
  if (!NAME.test(options.namespace) || !NAME.test(options.name)) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap: namespace and name must be Kubernetes object names');
  const connection = options.connection ?? (options.kubeconfig ? await kubeconfigConnection(options.kubeconfig) : options.inCluster ? inClusterConnection() : undefined);
  if (!connection) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap: give kubeconfig or inCluster');
  const api = new KubeApi(connection);
  const abort = new AbortController();
  let current: HsmEndpointSet | undefined;
  let lastText: string | undefined;
  const apply = (object: KubeObject | undefined) => {
    const text = (object?.data as Record<string, unknown> | undefined)?.[ENDPOINTS_KEY];
    if (typeof text !== 'string') {
      onError(new KeyholdError('ERR_CONFIG', `ConfigMap ${options.namespace}/${options.name} ${object ? `has no ${ENDPOINTS_KEY}` : 'does not exist'}: keeping the current endpoints`));
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
  const path = `/api/v1/namespaces/${options.namespace}/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=${options.name}`)}`;
  void listAndWatch(api, path, {
    onList: (items) => apply(items[0]),
    onEvent: (type, object) => { if (type === 'ADDED' || type === 'MODIFIED') apply(object); else if (type === 'DELETED') apply(undefined); },
    onError,
  }, abort.signal).finally(() => api.close());
  return {
    current: () => current,
    stop: () => abort.abort(),
  };
}
