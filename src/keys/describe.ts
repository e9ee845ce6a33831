import { createPublicKey } from 'node:crypto';
import type { KeyDescription } from '../wire/key-description.js';
import type { KeyRecord } from './types.js';

export type { KeyDescription };

/** The public view of a key: never material, wrapped or not. */
export function describeKey(record: KeyRecord): KeyDescription {
  return {
    name: record.name,
    type: record.type,
    protection: record.protection,
    created_at: record.createdAt,
    latest_version: record.latestVersion,
    min_decryption_version: record.minDecryptionVersion,
    deletion_allowed: record.deletionAllowed,
    disabled: record.disabled,
    versions: Object.values(record.versions)
      .sort((a, b) => a.version - b.version)
      .map((v) => ({
        version: v.version,
        created_at: v.createdAt,
        ...(v.publicKeySpki ? { public_key: createPublicKey({ key: Buffer.from(v.publicKeySpki, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString() } : {}),
      })),
  };
}
