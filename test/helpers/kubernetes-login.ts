import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane.js';
import { call } from './server.js';

/**
 * Gives keyhold the least-privilege identity docs/kubernetes-injection.md describes (get/list/watch
 * pods and service accounts, read the issuer's keys) and points a keyhold server's Kubernetes login
 * at the control plane with it.
 */
export async function configureKubernetesLogin(cp: ControlPlane, keyhold: { address: string; rootToken: string }): Promise<Record<string, unknown>> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name: 'keyhold-reviewer' } } });
  await rbac.createClusterRole({ body: {
    metadata: { name: 'keyhold-reviewer' },
    rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'watch'] },
      { nonResourceURLs: ['/openid/v1/jwks', '/.well-known/openid-configuration'], verbs: ['get'] },
    ],
  } });
  await rbac.createClusterRoleBinding({ body: {
    metadata: { name: 'keyhold-reviewer' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'keyhold-reviewer' },
    subjects: [{ kind: 'ServiceAccount', name: 'keyhold-reviewer', namespace: 'kube-system' }],
  } });
  const reviewer = (await core.createNamespacedServiceAccountToken({ namespace: 'kube-system', name: 'keyhold-reviewer', body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token as string;
  const config = { issuer: cp.url, api_server_url: cp.url, ca_pem: cp.caPem, reviewer_jwt: reviewer };
  const r = await call(keyhold.address, 'PUT', '/v1/auth/kubernetes/config', keyhold.rootToken, config);
  if (r.status !== 204) throw new Error(`configuring Kubernetes login: ${r.status} ${r.text}`);
  // What was configured, so a test can PUT it again with more (say, registry credentials).
  return config;
}

/**
 * Waits until keyhold's pod and service-account watches are live and have seen at least the given
 * resourceVersions (from the responses of the writes a test just made), so a test that deletes or
 * replaces an object and then logs in does not race keyhold's watch. Comparing resourceVersions as
 * numbers is an etcd implementation detail: fine for a test against a real etcd, not for keyhold.
 */
export async function waitForWatches(keyhold: { address: string; rootToken: string }, seen: { pods?: string | undefined; serviceAccounts?: string | undefined } = {}): Promise<KubernetesLoginStatus> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await call(keyhold.address, 'GET', '/v1/auth/kubernetes/status', keyhold.rootToken);
    if (r.status !== 200) throw new Error(`keyhold login status: ${r.status} ${r.text}`);
    const status = r.body as KubernetesLoginStatus;
    const caughtUp = (w: WatchView | undefined, rv: string | undefined) => !!w?.synced && (rv === undefined || Number(w.resource_version) >= Number(rv));
    if (caughtUp(status.pods, seen.pods) && caughtUp(status.service_accounts, seen.serviceAccounts)) return status;
    if (Date.now() > deadline) throw new Error(`keyhold's watches did not catch up in 15 s: ${r.text}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

interface WatchView { synced: boolean; objects: number; resource_version?: string; lists: number; events: number }
export interface KubernetesLoginStatus { configured: boolean; pods?: WatchView; service_accounts?: WatchView; live_gets?: number; cache_hits?: number }
