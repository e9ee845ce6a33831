import { hash } from 'node:crypto';

/**
 * A KMS v2 key_id: a hash of what identifies one root-key version (which HSM token or server, which
 * key, which version, and the random id the key got when it was made). So it is stable across
 * restarts and plugin instances, changes exactly when the version does, is never reused (a key
 * destroyed and made again under the same label has a new random id), and reveals none of its inputs.
 */
export function deriveKeyId(parts: readonly string[]): string {
  // Length-prefixed, so ("ab", "c") and ("a", "bc") cannot collide.
  const encoded = parts.map((part) => `${Buffer.byteLength(part, 'utf8')}:${part}`).join('');
  return `keyhold-${hash('sha256', `keyhold kms key_id v1\n${encoded}`, 'base64url')}`;
}
