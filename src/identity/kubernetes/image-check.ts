/**
 * Login step `attestation`: what the pod runs, read from the live pod (never from the token), must
 * satisfy the role's image policy (attestation.ts). Returns the images as selectors; a refusal is
 * ERR_PERMISSION_DENIED with the attestor's reason.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { ImageAttestor, ImagePolicy } from './attestation.js';
import { refused } from './refusal.js';

export async function checkImages(attestor: Pick<ImageAttestor, 'attest'>, livePod: V1Pod, policy: ImagePolicy): Promise<string[]> {
  const attestation = await attestor.attest(livePod, policy);
  if (!attestation.ok) throw refused('attestation', attestation.reason ?? 'image policy not satisfied');
  return attestation.images.map((image) => `k8s:image:${image.host}/${image.repository}@${image.digest}`);
}
