import { CoreV1Api, RbacAuthorizationV1Api, type V1Pod, type V1PolicyRule } from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane.js';
import { call } from './server.js';
import { pollUntil } from './wait.js';

/** The least-privilege rules docs/kubernetes-injection.md gives keyhold's reviewer: get/list/watch pods and service accounts, read the issuer's keys. */
export const REVIEWER_RULES: V1PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'watch'] },
  { nonResourceURLs: ['/openid/v1/jwks', '/.well-known/openid-configuration'], verbs: ['get'] },
];

/**
 * A reviewer identity for keyhold: a ServiceAccount in kube-system bound to a ClusterRole of the
 * same name holding `rules`, and a token for it. Change what it may do with setReviewerRules().
 */
export async function createReviewer(cp: ControlPlane, name = 'keyhold-reviewer', rules: V1PolicyRule[] = REVIEWER_RULES): Promise<string> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name } } });
  await rbac.createClusterRole({ body: { metadata: { name }, rules } });
  await rbac.createClusterRoleBinding({ body: {
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: 'kube-system' }],
  } });
  return serviceAccountToken(core, { namespace: 'kube-system', name }, { audiences: [], expirationSeconds: 3600 });
}

/**
 * A token of a service account from TokenRequest: audience `keyhold` and 600 s unless told
 * otherwise (`audiences: []` is the apiserver's own audience), bound to `pod` if one is given.
 */
export async function serviceAccountToken(core: CoreV1Api, account: { namespace: string; name: string }, options: { pod?: V1Pod; audiences?: string[]; expirationSeconds?: number } = {}): Promise<string> {
  const { pod, audiences = ['keyhold'], expirationSeconds = 600 } = options;
  const boundObjectRef = pod ? { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name as string, uid: pod.metadata?.uid as string } : undefined;
  const r = await core.createNamespacedServiceAccountToken({ namespace: account.namespace, name: account.name, body: { spec: { audiences, expirationSeconds, ...(boundObjectRef ? { boundObjectRef } : {}) } } });
  return r.status?.token as string;
}

/** A token exactly as the kubelet projects it into `pod`: its service account's, audience `keyhold` (or `audiences`), 600 s, bound to the pod. */
export function podToken(core: CoreV1Api, pod: V1Pod | undefined, audiences?: string[]): Promise<string> {
  if (!pod?.metadata?.namespace) throw new Error('podToken: no such pod (the test did not create it)');
  return serviceAccountToken(core, { namespace: pod.metadata.namespace, name: pod.spec?.serviceAccountName ?? 'default' }, { pod, ...(audiences ? { audiences } : {}) });
}

/** Replaces what the reviewer `name` may do (its ClusterRole's rules); RBAC applies it to new requests at once. */
export async function setReviewerRules(cp: ControlPlane, name: string, rules: V1PolicyRule[]): Promise<void> {
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const role = await rbac.readClusterRole({ name });
  await rbac.replaceClusterRole({ name, body: { ...role, rules } });
}

/** The body of PUT /v1/auth/kubernetes/config pointing at the control plane as `reviewerJwt`. */
export function loginConfig(cp: ControlPlane, reviewerJwt: string): Record<string, unknown> {
  return { issuer: cp.url, api_server_url: cp.url, ca_pem: cp.caPem, reviewer_jwt: reviewerJwt };
}

/**
 * Gives keyhold the least-privilege reviewer identity and points a keyhold server's Kubernetes
 * login at the control plane with it.
 */
export async function configureKubernetesLogin(cp: ControlPlane, keyhold: { address: string; rootToken: string }): Promise<Record<string, unknown>> {
  const config = loginConfig(cp, await createReviewer(cp));
  const r = await call(keyhold.address, 'PUT', '/v1/auth/kubernetes/config', keyhold.rootToken, config);
  if (r.status !== 204) throw new Error(`configuring Kubernetes login: ${r.status} ${r.text}`);
  // Pod-bound logins are refused until the pod watch has listed: callers log in right away.
  await waitForWatches(keyhold);
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
  const caughtUp = (w: WatchView | undefined, rv: string | undefined) => !!w?.synced && (rv === undefined || Number(w.resource_version) >= Number(rv));
  let last = '';
  return pollUntil("keyhold's watches to catch up", async () => {
    const r = await call(keyhold.address, 'GET', '/v1/auth/kubernetes/status', keyhold.rootToken);
    if (r.status !== 200) throw new Error(`keyhold login status: ${r.status} ${r.text}`);
    last = r.text;
    const status = r.body as KubernetesLoginStatus;
    return caughtUp(status.pods, seen.pods) && caughtUp(status.service_accounts, seen.serviceAccounts) && status;
  }, { timeoutMs: 15_000, intervalMs: 20, detail: () => last });
}

interface WatchView { synced: boolean; error?: string; objects: number; resource_version?: string; lists: number; events: number }
export interface KubernetesLoginStatus { configured: boolean; pods?: WatchView; service_accounts?: WatchView; live_gets?: number; cache_hits?: number }
