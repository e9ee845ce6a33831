/**
 * Kubernetes service-account login: a fixed order of small steps, each failing with one kind of
 * error (refusal.ts), as sigstore's verifier does. Offline checks come first, so a forged token
 * is refused for what it is before anything is asked of the cluster:
 *
 *   configured → role → jwt → binding → synced → live → attestation → issue
 *
 * Only `live` and `attestation` ask the network, and only `issue` writes.
 */
import { KeyholdError } from '../../errors.js';
import type { ImageAttestor } from './attestation.js';
import { checkBinding } from './binding-check.js';
import type { KubernetesCluster } from './cluster.js';
import { checkImages } from './image-check.js';
import { checkJwt } from './jwt-check.js';
import { checkLive, checkPodWatchSynced } from './live-check.js';
import { refused } from './refusal.js';
import type { KubernetesRoleStore } from './role-store.js';
import { identitySelectors, issueToken, type LoginResult, type TokenIssuer } from './token-issue.js';
import type { KubernetesAuthConfig, KubernetesRole } from './types.js';
import type { VerificationKeys } from './verification-keys.js';

/** One configuration's live parts: replaced together when the configuration is, read once per login. */
export interface LoginContext {
  config: KubernetesAuthConfig;
  cluster: KubernetesCluster;
  keys: VerificationKeys;
}

export interface LoginServices {
  roles: Pick<KubernetesRoleStore, 'find'>;
  attestor: Pick<ImageAttestor, 'attest'>;
  issuer: TokenIssuer;
}

export async function login(context: LoginContext | undefined, services: LoginServices, roleName: string, jwt: string): Promise<LoginResult> {
  if (!context) throw new KeyholdError('ERR_NOT_FOUND', 'Kubernetes login is not configured');
  const role = await findRole(services.roles, roleName);
  const claims = await checkJwt(jwt, { issuer: context.config.issuer, audience: role.audience, maxTokenAgeSeconds: role.maxTokenAgeSeconds }, context.keys);
  checkBinding(role, claims);
  checkPodWatchSynced(claims, context.cluster);
  const livePod = await checkLive(claims, context.cluster);
  const selectors = identitySelectors(claims);
  if (role.imagePolicy && livePod) selectors.push(...await checkImages(services.attestor, livePod, role.imagePolicy));
  return issueToken(services.issuer, role, claims, selectors);
}

/** Step `role`: only a missing role is a refusal; a storage failure stays what it is. */
async function findRole(roles: Pick<KubernetesRoleStore, 'find'>, name: string): Promise<KubernetesRole> {
  const role = await roles.find(name);
  if (!role) throw refused('role', `no role "${name}"`);
  return role;
}
