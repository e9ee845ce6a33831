import type { KeyObject } from 'node:crypto';

/** The kinds of key keyhold asks an HSM to generate; see hsm/mechanisms.ts for their templates. */
export type HsmKeyKind = 'aes256' | 'hmac-sha256' | 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

/**
 * A key inside the token, named by its label. Object handles are per connection (a reconnect or
 * another cluster member gives other handles), so adapters resolve label → handle themselves and
 * nothing outside src/hsm ever sees one.
 */
export interface HsmKey {
  readonly label: string;
  readonly kind: HsmKeyKind;
}

/** Generation result: asymmetric keys also hand back their public half (SPKI DER), which keyhold keeps outside the token. */
export interface GeneratedHsmKey extends HsmKey {
  readonly publicKeySpki?: Buffer;
}

/** What the token can do, probed at start from its mechanism list and flags, never from vendor strings. */
export interface HsmCapabilities {
  aesGcm: boolean;
  aesKeyWrapPad: boolean;
  hmacSha256: boolean;
  ecdsa: boolean;
  rsaPss: boolean;
  rsaOaepDecrypt: boolean;
  /** False on decrypt-only devices: keyhold then encrypts with the public key locally. */
  rsaOaepEncryptOnDevice: boolean;
  ecKeyGen: boolean;
  rsaKeyGen: boolean;
}

export interface HsmTokenInfo {
  label: string;
  manufacturer: string;
  model: string;
  serial: string;
  slotId: string;
}

export interface HsmHealth {
  ok: boolean;
  checkedAt: number;
  latencyMs: number;
  error?: string;
  /** Per member, from a pool of connections (src/hsm/pool.ts). */
  members?: HsmMemberHealth[];
}

/** up: takes calls; down: out (breaker open, reconnecting with back-off); probing: a reconnect or probe is running. */
export type HsmMemberState = 'up' | 'down' | 'probing';

export interface HsmMemberHealth {
  name: string;
  state: HsmMemberState;
  latencyMs: number;
  /** Failures that counted against the member (device gone, transport errors), since start. */
  failures: number;
  inFlight: number;
}

export interface HsmKeyAttributes {
  token: boolean;
  private: boolean;
  sensitive: boolean;
  extractable: boolean;
  neverExtractable: boolean;
  alwaysSensitive: boolean;
  /** True when reading the secret value (CKA_VALUE or CKA_PRIVATE_EXPONENT) was refused by the token. */
  valueReadRefused: boolean;
}

export type OaepHash = 'sha256' | 'sha1';

/**
 * The HSM as keyhold sees it. Everything PKCS#11-specific stays behind this interface; every
 * implementation passes test/contract/hsm.ts.
 */
export interface Hsm {
  readonly token: HsmTokenInfo;
  readonly capabilities: HsmCapabilities;
  findKey(label: string, kind: HsmKeyKind): HsmKey | null;
  /** The key with this label, generated (non-extractable) if the token has none. */
  findOrCreateKey(label: string, kind: HsmKeyKind): Promise<HsmKey>;
  /** Generates a new non-extractable token key; refuses if one with that label exists. */
  generateKey(label: string, kind: HsmKeyKind): Promise<GeneratedHsmKey>;
  /** Every token key of this kind whose label starts with the prefix (another process may have created them). */
  listKeys(labelPrefix: string, kind: HsmKeyKind): HsmKey[];
  /** The key's CKA_ID: random per generated key, so it tells two keys that had the same label apart. */
  objectId(key: HsmKey): Buffer;
  /** Removes the key from the token; a key already gone is fine. */
  destroyKey(key: HsmKey): Promise<void>;
  /** AES-256-GCM on the device; returns iv(12) ‖ ciphertext ‖ tag(16). */
  aesGcmEncrypt(key: HsmKey, plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  /** Rejects with ERR_CIPHERTEXT_INVALID when the tag, AAD or layout is wrong. */
  aesGcmDecrypt(key: HsmKey, blob: Buffer, aad: Buffer): Promise<Buffer>;
  hmacSha256(key: HsmKey, data: Buffer): Promise<Buffer>;
  /** ECDSA (raw r‖s over SHA-256/384 of data) or RSA-PSS-SHA256, on the device. */
  sign(key: HsmKey, data: Buffer): Promise<Buffer>;
  /** RSA-OAEP; on the device where it can, else locally with the public key (decided by probing). */
  rsaEncrypt(key: HsmKey, publicKey: KeyObject, plaintext: Buffer, hash: OaepHash): Promise<Buffer>;
  rsaDecrypt(key: HsmKey, ciphertext: Buffer, hash: OaepHash): Promise<Buffer>;
  /** Which OAEP hash this token accepts for this key (SHA-256 preferred); probed with the key itself. */
  probeOaepHash(key: HsmKey, publicKey: KeyObject): Promise<OaepHash>;
  attributes(key: HsmKey): HsmKeyAttributes;
  /**
   * Stores `value` as a CKO_DATA object in the token: token, private (readable only after login),
   * not modifiable. Refuses (ERR_CONFLICT) when a data object with this label exists.
   */
  putDataObject(label: string, value: Buffer): Promise<void>;
  /** The value of the data object with this label, or null when the token has none. */
  getDataObject(label: string): Promise<Buffer | null>;
  /** Removes the data object; one already gone is fine. */
  destroyDataObject(label: string): Promise<void>;
  /** Cheap and cached: safe to call from readiness probes. */
  health(): Promise<HsmHealth>;
  /** Number of cryptographic calls made on the device (for metrics and benches). */
  readonly callCount: number;
  close(): Promise<void>;
}
