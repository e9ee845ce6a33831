export const KEY_TYPES = ['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const PROTECTIONS = ['hsm', 'wrapped'] as const;
export type Protection = (typeof PROTECTIONS)[number];

export interface KeyVersionRecord {
  version: number;
  createdAt: string;
  /** protection=hsm: label of the non-extractable token object. */
  hsmLabel?: string;
  /** protection=wrapped: key material (raw secret or PKCS#8 DER) AES-GCM-encrypted by the HSM wrap key, base64. */
  wrappedMaterial?: string;
  /** Asymmetric keys: the public half, SPKI DER base64. */
  publicKeySpki?: string;
  /** RSA keys: the OAEP hash this token accepts, probed when the version was created. */
  oaepHash?: 'sha256' | 'sha1';
}

export interface KeyRecord {
  name: string;
  /** Random and immutable: binds HSM labels and wrapping AAD to this key, not to a reusable name. */
  id: string;
  type: KeyType;
  protection: Protection;
  createdAt: string;
  latestVersion: number;
  /** Versions below this no longer decrypt or verify (retired after re-encryption). */
  minDecryptionVersion: number;
  deletionAllowed: boolean;
  disabled: boolean;
  versions: Record<string, KeyVersionRecord>;
}

export const KEY_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
