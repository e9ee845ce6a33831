import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane.js';
import { call } from './server.js';

/**
 * Gives keyhold the least-privilege identity docs/kubernetes-injection.md describes (get/list/watch
 * pods, get service accounts, read the issuer's keys) and points a keyhold server's Kubernetes login
 * at the control plane with it.
 */
export async function configureKubernetesLogin(cp: ControlPlane, keyhold: { address: string; rootToken: string }): Promise<void> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name: 'keyhold-reviewer' } } });
  await rbac.createClusterRole({ body: {
    metadata: { name: 'keyhold-reviewer' },
    rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get'] },
      { nonResourceURLs: ['/openid/v1/jwks', '/.well-known/openid-configuration'], verbs: ['get'] },
    ],
  } });
  await rbac.createClusterRoleBinding({ body: {
    metadata: { name: 'keyhold-reviewer' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'keyhold-reviewer' },
    subjects: [{ kind: 'ServiceAccount', name: 'keyhold-reviewer', namespace: 'kube-system' }],
  } });
  const reviewer = (await core.createNamespacedServiceAccountToken({ namespace: 'kube-system', name: 'keyhold-reviewer', body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token as string;
  const r = await call(keyhold.address, 'PUT', '/v1/auth/kubernetes/config', keyhold.rootToken, { issuer: cp.url, api_server_url: cp.url, ca_pem: cp.caPem, reviewer_jwt: reviewer });
  if (r.status !== 204) throw new Error(`configuring Kubernetes login: ${r.status} ${r.text}`);
}
