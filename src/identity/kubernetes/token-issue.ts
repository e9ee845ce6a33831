/**
 * Login step `issue`: the keyhold token, carrying the identity as selectors. A pod's token is
 * written in one commit with its pod index entry, and refused (ERR_PERMISSION_DENIED) when the pod
 * was deleted while it was being issued.
 */
import type { TokenStore } from '../tokens.js';
import type { ServiceAccountClaims } from './jwt-check.js';
import type { PodTokenIndex } from './pod-token-index.js';
import { refused } from './refusal.js';
import type { KubernetesIdentity, KubernetesRole } from './types.js';

export interface LoginResult {
  token: string;
  accessor: string;
  ttlSeconds: number;
  identity: KubernetesIdentity;
  policies: string[];
}

export interface TokenIssuer {
  tokens: Pick<TokenStore, 'create'>;
  index: Pick<PodTokenIndex, 'entry' | 'revokePod'>;
  /** Whether this replica's pod watch saw the pod deleted recently. */
  podDeleted(uid: string): boolean;
  /** Told of each pod a token was issued to (see own-issues.ts). */
  issued(uid: string): void;
}

/** Who logged in, as `type:value` selectors (SPIRE's k8s attestor's shape). */
export function identitySelectors(claims: ServiceAccountClaims): string[] {
  const { namespace, serviceAccount: sa, pod } = claims;
  const selectors = [`k8s:ns:${namespace}`, `k8s:sa:${namespace}/${sa.name}`, `k8s:sa-uid:${sa.uid}`];
  if (pod) selectors.push(`k8s:pod:${namespace}/${pod.name}`, `k8s:pod-uid:${pod.uid}`);
  return selectors;
}

export async function issueToken(issuer: TokenIssuer, role: KubernetesRole, claims: ServiceAccountClaims, selectors: string[]): Promise<LoginResult> {
  const { namespace, serviceAccount: sa, pod } = claims;
  // No parent: a pod's token lives by its pod (revoked at its deletion) and the server maximum TTL.
  const { token, record } = await issuer.tokens.create(
    { policies: role.policies, ttlSeconds: role.ttlSeconds, displayName: `k8s:${namespace}/${sa.name}`, selectors },
    (r) => (pod ? [issuer.index.entry(pod.uid, r.id, r.createdAt)] : []),
  );
  if (pod) issuer.issued(pod.uid);
  // A deletion the watch reported after the live check but before the index existed would have
  // found nothing to revoke: check for it now (a later deletion finds the index).
  if (pod && issuer.podDeleted(pod.uid)) {
    await issuer.index.revokePod(pod.uid);
    throw refused('issue', 'pod no longer exists');
  }
  return {
    token,
    accessor: record.accessor as string,
    // The role's TTL, clamped to the server maximum.
    ttlSeconds: Math.round((Date.parse(record.expiresAt as string) - Date.parse(record.createdAt)) / 1000),
    policies: record.policies,
    identity: { namespace, serviceAccount: sa.name, serviceAccountUid: sa.uid, ...(pod ? { podName: pod.name, podUid: pod.uid } : {}), selectors },
  };
}
