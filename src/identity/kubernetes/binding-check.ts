/**
 * Login step `binding`: whether the role admits who the token names. Pure: the role and the
 * verified claims in, a refusal (ERR_PERMISSION_DENIED) or nothing out.
 */
import { globMatch } from './glob.js';
import type { ServiceAccountClaims } from './jwt-check.js';
import { refused } from './refusal.js';
import type { KubernetesRole } from './types.js';

export function checkBinding(role: KubernetesRole, claims: ServiceAccountClaims): void {
  const { namespace, serviceAccount } = claims;
  if (!role.boundNamespaces.some((g) => globMatch(g, namespace))) throw refused('binding', `namespace ${namespace} is not bound to role ${role.name}`);
  if (!role.boundServiceAccounts.some((g) => globMatch(g, serviceAccount.name))) throw refused('binding', `service account ${serviceAccount.name} is not bound to role ${role.name}`);
  if ((role.requirePodBound || role.imagePolicy) && !claims.pod) {
    throw refused('binding', role.imagePolicy ? 'the role has an image policy, which needs a pod-bound token' : 'the role requires a pod-bound token');
  }
}
