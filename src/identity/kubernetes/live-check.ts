/**
 * Login steps `synced` and `live`: what the token names must still exist as it was when the token
 * was issued. A token outlives what it was issued for; these checks make it die with it.
 *
 * The cluster answers from its pod and service-account watches when they hold the object with the
 * token's uid (as kube-apiserver's own token check does), by a live GET otherwise; a deletion the
 * pod watch reports later revokes what was issued (pod-revoker.ts).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { KeyholdError } from '../../errors.js';
import type { KubernetesCluster } from './cluster.js';
import type { ServiceAccountClaims } from './jwt-check.js';
import { refused } from './refusal.js';

/** Retry-After of a login refused because the pod watch is not synced (about one re-list). */
export const NOT_SYNCED_RETRY_SECONDS = 5;

/**
 * Step `synced` (ERR_KUBERNETES_NOT_SYNCED, a 503: the caller should come back, not give up). A
 * pod-bound token is promised to die with its pod, and only the pod watch can keep that promise:
 * never issue one on a view that is not live (not listed yet, lost, or forbidden).
 */
export function checkPodWatchSynced(claims: ServiceAccountClaims, cluster: Pick<KubernetesCluster, 'podsSynced'>): void {
  if (claims.pod && !cluster.podsSynced()) {
    const reason = 'keyhold\'s pod watch is not synced (starting, kube-apiserver unreachable, or the reviewer lost list/watch on pods), so it could not revoke this token when the pod is deleted; try again later';
    throw new KeyholdError('ERR_KUBERNETES_NOT_SYNCED', `login refused: ${reason}`, { details: { reason, step: 'synced' } });
  }
}

/** Step `live`: looks the service account (and pod) up and judges them; returns the live pod of a pod-bound token. */
export async function checkLive(claims: ServiceAccountClaims, cluster: Pick<KubernetesCluster, 'serviceAccountUid' | 'pod'>): Promise<V1Pod | undefined> {
  const { namespace, serviceAccount, pod } = claims;
  const [liveSaUid, livePod] = await Promise.all([
    cluster.serviceAccountUid(namespace, serviceAccount.name, serviceAccount.uid),
    pod ? cluster.pod(namespace, pod.name, pod.uid) : undefined,
  ]);
  judgeLive(claims, liveSaUid, livePod);
  return livePod;
}

/** The verdict on what the cluster holds (pure): a refusal (ERR_PERMISSION_DENIED) or nothing. */
export function judgeLive(claims: ServiceAccountClaims, liveSaUid: string | undefined, livePod: V1Pod | undefined): void {
  const denied = (reason: string) => refused('live', reason);
  if (!liveSaUid) throw denied('service account no longer exists');
  if (liveSaUid !== claims.serviceAccount.uid) throw denied('service account was deleted and recreated since the token was issued');
  if (!claims.pod) return;
  if (!livePod) throw denied('pod no longer exists');
  if (livePod.metadata?.uid !== claims.pod.uid) throw denied('pod was replaced since the token was issued');
  if (livePod.metadata?.deletionTimestamp) throw denied('pod is being deleted');
  if ((livePod.spec?.serviceAccountName ?? 'default') !== claims.serviceAccount.name) throw denied('pod does not run as the token\'s service account');
}
