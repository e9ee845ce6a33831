/**
 * The background jobs of the core, as units the leader runs (src/ha/jobs.ts): the token sweep and
 * the revocation of deleted pods' tokens, the rewrite after a root-key rotation. The pod watches themselves run on every replica, since
 * any replica serves logins; only acting on a deletion is the leader's.
 */
import type { KubernetesAuth } from '../identity/kubernetes/auth.js';
import type { OidcAuth } from '../identity/oidc/oidc-auth.js';
import type { TokenStore } from '../identity/tokens.js';
import { intervalJob, type BackgroundJob, type BackgroundJobs } from './jobs.js';

export const TOKEN_SWEEP_INTERVAL_MS = 60_000;

export function registerCoreJobs(jobs: BackgroundJobs, services: { tokens: TokenStore; kubernetesAuth: KubernetesAuth; oidcAuth?: Pick<OidcAuth, 'sweepFlows'>; rootRotation?: BackgroundJob }, warn: (message: string) => void): void {
  // Expired tokens are refused on sight; this reclaims their records (and what was written with them).
  jobs.register(intervalJob('token-sweep', TOKEN_SWEEP_INTERVAL_MS, () => services.tokens.sweepExpired(), (m) => warn(`sweeping expired tokens: ${m}`)));
  // SSO logins begun and never finished: their flows expire after 10 min; this deletes them.
  const oidc = services.oidcAuth;
  if (oidc) jobs.register(intervalJob('oidc-flow-sweep', TOKEN_SWEEP_INTERVAL_MS, () => oidc.sweepFlows(), (m) => warn(`sweeping expired SSO login flows: ${m}`)));
  // Stopping resolves once revocations under way have finished; the registry need not wait for it.
  const revoker = services.kubernetesAuth.podRevoker;
  jobs.register({ name: revoker.name, start: () => revoker.start(), stop: () => void revoker.stop() });
  // The rewrite of records after a root-key rotation (src/barrier/rotation.ts): resumes from its saved cursor.
  if (services.rootRotation) jobs.register(services.rootRotation);
}
