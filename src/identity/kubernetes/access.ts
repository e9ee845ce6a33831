/**
 * What keyhold's reviewer identity must be allowed in the cluster for Kubernetes login to keep its
 * promises, checked with SelfSubjectAccessReview (asked as the reviewer itself, which every
 * authenticated identity may do through the default `system:basic-user` role).
 *
 * - get, list, watch on pods and serviceaccounts, cluster-wide: the watches are of all namespaces
 *   (`/api/v1/pods`), and the pod watch is what makes a pod's tokens die with it. A grant in some
 *   namespaces only would leave the watch failing with 403 and every pod-bound login refused, so
 *   it is refused at configuration already. `get` is the live look-up when the watch does not
 *   hold an object.
 * - get on /openid/v1/jwks, unless the configuration gives the signing keys (public_keys_pem).
 * TokenReview is not used (tokens are verified locally), so `create tokenreviews` is not needed.
 */
import { KeyholdError, isKeyholdError } from '../../errors.js';
import type { KubernetesCluster } from './cluster.js';
import type { KubernetesAuthConfig } from './types.js';

/** One SelfSubjectAccessReview question: a verb on a core resource in every namespace, or on a URL path. */
export type Access = { verb: string; resource: string } | { verb: string; path: string };

/** What the watches need: losing one of these untrusts the copy (see cluster.ts). */
export const WATCH_ACCESS: readonly Access[] = ['pods', 'serviceaccounts'].flatMap((resource) => ['list', 'watch'].map((verb) => ({ verb, resource })));

/** Everything a login needs of the cluster with this configuration. */
export function loginAccess(config: Pick<KubernetesAuthConfig, 'publicKeysPem'>): Access[] {
  const access: Access[] = ['pods', 'serviceaccounts'].flatMap((resource) => ['get', 'list', 'watch'].map((verb) => ({ verb, resource })));
  if (!config.publicKeysPem) access.push({ verb: 'get', path: '/openid/v1/jwks' });
  return access;
}

/** "list pods", "get /openid/v1/jwks": how a refusal names what is missing. */
export function describeAccess(access: Access): string {
  return 'resource' in access ? `${access.verb} ${access.resource}` : `${access.verb} ${access.path}`;
}

/** The SelfSubjectAccessReview body: no namespace means all namespaces. */
export function accessReview(access: Access): Record<string, unknown> {
  return {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview',
    spec: 'resource' in access ? { resourceAttributes: { verb: access.verb, group: '', resource: access.resource } } : { nonResourceAttributes: { verb: access.verb, path: access.path } },
  };
}

/**
 * Refuses a configuration whose reviewer cannot do what login needs, naming what is missing
 * (ERR_KUBERNETES_PERMISSIONS), or whose kube-apiserver cannot be asked (ERR_KUBERNETES_UNREACHABLE).
 */
export async function checkReviewerAccess(cluster: Pick<KubernetesCluster, 'deniedAccess'>, config: KubernetesAuthConfig): Promise<void> {
  let denied: string[];
  try {
    denied = await cluster.deniedAccess(loginAccess(config));
  } catch (err) {
    const status = isKeyholdError(err) ? err.details?.status : undefined;
    if (status === 401) {
      throw new KeyholdError('ERR_KUBERNETES_PERMISSIONS', `kube-apiserver does not accept ${config.reviewerJwt ? 'reviewer_jwt (expired, revoked, or of another cluster)' : 'anonymous requests; set reviewer_jwt'}`, { details: { missing: [] } });
    }
    if (status === 403) {
      throw new KeyholdError('ERR_KUBERNETES_PERMISSIONS', `the reviewer identity may not create selfsubjectaccessreviews (authorization.k8s.io), so keyhold cannot check what it may do${config.reviewerJwt ? '' : '; set reviewer_jwt'}`, { details: { missing: ['create selfsubjectaccessreviews.authorization.k8s.io'] } });
    }
    const why = err instanceof Error ? err.message : String(err);
    throw new KeyholdError('ERR_KUBERNETES_UNREACHABLE', `cannot check the reviewer's permissions at ${config.apiServerUrl}: ${why}`, { cause: err });
  }
  if (denied.length > 0) {
    throw new KeyholdError('ERR_KUBERNETES_PERMISSIONS',
      `the reviewer identity may not ${denied.join(', ')} (cluster-wide); Kubernetes login needs get, list and watch on pods and serviceaccounts in all namespaces${loginAccess(config).some((a) => 'path' in a) ? ', and get on /openid/v1/jwks unless public_keys_pem is given' : ''}`,
      { details: { missing: denied } });
  }
}
