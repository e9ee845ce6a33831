import {
  createCipheriv, createDecipheriv, createHmac, createPrivateKey, generateKeyPair, privateDecrypt, publicEncrypt, randomBytes, sign as nodeSign,
  constants as cryptoConstants, type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from '../crypto/aead.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import { ckrError } from './ckr.js';
import type {
  GeneratedHsmKey, Hsm, HsmCapabilities, HsmHealth, HsmKey, HsmKeyAttributes, HsmKeyKind, HsmTokenInfo, OaepHash,
} from './types.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** What PKCS#11 would call the key type: findKey and listKeys match on it, as Pkcs11Hsm does. */
type KeyType = 'aes' | 'generic-secret' | 'ec' | 'rsa';

const KEY_TYPE: Record<HsmKeyKind, KeyType> = {
  aes256: 'aes', 'hmac-sha256': 'generic-secret', 'ec-p256': 'ec', 'ec-p384': 'ec', 'rsa-2048': 'rsa', 'rsa-3072': 'rsa', 'rsa-4096': 'rsa',
};

function keyTypeOf(kind: HsmKeyKind): KeyType {
  const type = Object.hasOwn(KEY_TYPE, kind) ? KEY_TYPE[kind] : undefined;
  if (!type) throw new KeyholdError('ERR_NOT_SUPPORTED', `unsupported HSM key kind ${String(kind)}`);
  return type;
}

const isSecret = (type: KeyType): boolean => type === 'aes' || type === 'generic-secret';

export interface StoredKey {
  readonly label: string;
  readonly kind: HsmKeyKind;
  readonly type: KeyType;
  readonly id: Buffer;
  /** The raw secret (AES, HMAC) or the private key as PKCS#8 DER: a Buffer, so close() can zero it. */
  readonly secret: Buffer;
}

/** The objects of one simulated token: MemoryHsm connections given the same store see the same keys and data objects, like members of an HSM cluster. */
export interface MemoryKeyStore {
  readonly keys: Map<string, StoredKey>;
  /** CKO_DATA objects by label. */
  readonly dataObjects: Map<string, Buffer>;
}

export function memoryKeyStore(): MemoryKeyStore {
  return { keys: new Map(), dataObjects: new Map() };
}

/**
 * A simulated device for tests of the HSM pool: while `failure` names a CKR, every call on every
 * connection opened on this device fails with it (CKR_DEVICE_ERROR: the device is gone).
 */
export interface MemoryDevice {
  failure?: string;
  /** Added to HMAC and sign calls (before they run), so tests can hold calls in flight. */
  delayMs?: number;
}

export interface MemoryHsmOptions {
  /** Token label (default "keyhold-memory"). */
  label?: string;
  healthCacheSeconds?: number;
  /** Acts as a narrower token: these capabilities are off, and AES-GCM calls are then refused as a token without the mechanism would. */
  withoutCapabilities?: Array<keyof HsmCapabilities>;
  /** Shared with other connections (a cluster); the store's owner zeroes it, not close(). */
  store?: MemoryKeyStore;
  device?: MemoryDevice;
}

/**
 * An HSM in this process's memory, done with node:crypto: for tests of domain logic (no SoftHSM
 * token needed) and throw-away servers. It keeps the token's rules: no call hands out key bytes,
 * keys are found by label, a label is taken once, and it fails with the codes Pkcs11Hsm uses.
 * Everything is gone when the process ends; close() zeroes every key it holds.
 */
export class MemoryHsm implements Hsm {
  readonly token: HsmTokenInfo;
  /** Everything on; a test may turn capabilities off (as Pkcs11Hsm's `withoutCapabilities` does) to act as a narrower token. */
  readonly capabilities: HsmCapabilities = {
    aesGcm: true, aesKeyWrapPad: false, hmacSha256: true, ecdsa: true, rsaPss: true, rsaOaepDecrypt: true,
    rsaOaepEncryptOnDevice: true, ecKeyGen: true, rsaKeyGen: true,
  };
  private readonly byLabel: Map<string, StoredKey>;
  private readonly sharedKeys: boolean;
  private readonly device: MemoryDevice | undefined;
  /** CKO_DATA objects by label (shared, like the keys, between connections to one simulated token). */
  private readonly dataObjects: Map<string, Buffer>;
  /** Labels being generated: reserved before the first await, as Pkcs11Hsm does. */
  private readonly generating = new Set<string>();
  private readonly healthTtlMs: number;
  private healthCache: HsmHealth | undefined;
  private calls = 0;
  private closed = false;

  constructor(options: MemoryHsmOptions = {}) {
    this.token = {
      label: options.label ?? 'keyhold-memory',
      manufacturer: 'keyhold',
      model: 'memory',
      // Distinct per instance: the seal record names the serial that sealed a store.
      serial: randomBytes(8).toString('hex'),
      slotId: '0',
    };
    this.healthTtlMs = (options.healthCacheSeconds ?? 5) * 1000;
    for (const name of options.withoutCapabilities ?? []) this.capabilities[name] = false;
    const store = options.store ?? memoryKeyStore();
    this.byLabel = store.keys;
    this.dataObjects = store.dataObjects;
    this.sharedKeys = options.store !== undefined;
    this.device = options.device;
  }

  static async open(options: MemoryHsmOptions = {}): Promise<MemoryHsm> {
    return new MemoryHsm(options);
  }

  get callCount(): number {
    return this.calls;
  }

  findKey(label: string, kind: HsmKeyKind): HsmKey | null {
    this.requireOpen('find');
    const stored = this.byLabel.get(label);
    // PKCS#11 finds by class and label: a secret key does not answer for a private key.
    if (!stored || isSecret(stored.type) !== isSecret(keyTypeOf(kind))) return null;
    return { label, kind };
  }

  async findOrCreateKey(label: string, kind: HsmKeyKind): Promise<HsmKey> {
    return this.findKey(label, kind) ?? this.generateKey(label, kind);
  }

  async generateKey(label: string, kind: HsmKeyKind): Promise<GeneratedHsmKey> {
    this.requireOpen('key generation');
    const type = keyTypeOf(kind);
    if (this.generating.has(label) || this.byLabel.has(label)) throw new KeyholdError('ERR_CONFLICT', `an HSM key labelled "${label}" already exists`);
    this.generating.add(label);
    this.calls++;
    try {
      let secret: Buffer;
      let publicKeySpki: Buffer | undefined;
      if (isSecret(type)) {
        secret = randomBytes(32);
      } else {
        const pair = type === 'ec'
          ? await generateKeyPairAsync('ec', { namedCurve: kind === 'ec-p256' ? 'P-256' : 'P-384' })
          : await generateKeyPairAsync('rsa', { modulusLength: Number(kind.slice(4)), publicExponent: 0x10001 });
        secret = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
        publicKeySpki = pair.publicKey.export({ type: 'spki', format: 'der' });
      }
      if (this.closed) {
        zeroize(secret);
        throw ckrError('CKR_CRYPTOKI_NOT_INITIALIZED', 'key generation');
      }
      const stored: StoredKey = { label, kind, type, id: randomBytes(16), secret };
      this.byLabel.set(label, stored);
      const key: HsmKey = { label, kind };
      return publicKeySpki ? { ...key, publicKeySpki } : key;
    } finally {
      this.generating.delete(label);
    }
  }

  listKeys(labelPrefix: string, kind: HsmKeyKind): HsmKey[] {
    this.requireOpen('listing keys');
    const type = keyTypeOf(kind);
    const keys: HsmKey[] = [];
    for (const stored of this.byLabel.values()) {
      if (stored.type === type && stored.label.startsWith(labelPrefix)) keys.push({ label: stored.label, kind });
    }
    return keys;
  }

  objectId(key: HsmKey): Buffer {
    return Buffer.from(this.stored(key, 'reading CKA_ID').id);
  }

  async destroyKey(key: HsmKey): Promise<void> {
    this.requireOpen('destroy');
    const stored = this.byLabel.get(key.label);
    if (!stored) return;
    this.byLabel.delete(stored.label);
    zeroize(stored.secret);
  }

  async aesGcmEncrypt(key: HsmKey, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    const stored = this.ofType(key, 'aes', 'AES-GCM encrypt');
    this.calls++;
    const iv = randomBytes(GCM_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', stored.secret, iv, { authTagLength: GCM_TAG_BYTES });
    cipher.setAAD(aad);
    return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  async aesGcmDecrypt(key: HsmKey, blob: Buffer, aad: Buffer): Promise<Buffer> {
    const stored = this.ofType(key, 'aes', 'AES-GCM decrypt');
    if (blob.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext is too short');
    this.calls++;
    try {
      const decipher = createDecipheriv('aes-256-gcm', stored.secret, blob.subarray(0, GCM_IV_BYTES), { authTagLength: GCM_TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(blob.subarray(blob.length - GCM_TAG_BYTES));
      return Buffer.concat([decipher.update(blob.subarray(GCM_IV_BYTES, blob.length - GCM_TAG_BYTES)), decipher.final()]);
    } catch (cause) {
      throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed authentication', { cause });
    }
  }

  async hmacSha256(key: HsmKey, data: Buffer): Promise<Buffer> {
    if (this.device?.delayMs) await this.inFlight('HMAC');
    const stored = this.ofType(key, 'generic-secret', 'HMAC');
    this.calls++;
    return createHmac('sha256', stored.secret).update(data).digest();
  }

  async sign(key: HsmKey, data: Buffer): Promise<Buffer> {
    if (this.device?.delayMs) await this.inFlight('sign');
    const stored = this.stored(key, 'sign');
    if (isSecret(stored.type)) throw new KeyholdError('ERR_KEY_OPERATION_UNSUPPORTED', `${key.kind} keys do not sign`);
    this.calls++;
    const privateKey = this.privateKey(stored);
    if (stored.type === 'ec') return nodeSign(stored.kind === 'ec-p384' ? 'sha384' : 'sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return nodeSign('sha256', data, { key: privateKey, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  }

  async rsaEncrypt(key: HsmKey, publicKey: KeyObject, plaintext: Buffer, hash: OaepHash): Promise<Buffer> {
    this.ofType(key, 'rsa', 'RSA-OAEP encrypt');
    this.calls++;
    try {
      return publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
    } catch (cause) {
      // Too long a plaintext: CKR_DATA_LEN_RANGE on a token.
      throw ckrError('CKR_DATA_LEN_RANGE', 'RSA-OAEP encrypt', cause);
    }
  }

  async rsaDecrypt(key: HsmKey, ciphertext: Buffer, hash: OaepHash): Promise<Buffer> {
    const stored = this.ofType(key, 'rsa', 'RSA-OAEP decrypt');
    this.calls++;
    try {
      return privateDecrypt({ key: this.privateKey(stored), padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, ciphertext);
    } catch (cause) {
      throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed authentication', { cause });
    }
  }

  async probeOaepHash(key: HsmKey, _publicKey: KeyObject): Promise<OaepHash> {
    this.ofType(key, 'rsa', 'RSA-OAEP probe');
    return 'sha256';
  }

  attributes(key: HsmKey): HsmKeyAttributes {
    this.stored(key, 'reading attributes');
    return { token: true, private: true, sensitive: true, extractable: false, neverExtractable: true, alwaysSensitive: true, valueReadRefused: true };
  }

  async putDataObject(label: string, value: Buffer): Promise<void> {
    this.requireOpen('creating a data object');
    if (this.dataObjects.has(label)) throw new KeyholdError('ERR_CONFLICT', `an HSM data object labelled "${label}" already exists`);
    this.dataObjects.set(label, Buffer.from(value));
  }

  async getDataObject(label: string): Promise<Buffer | null> {
    this.requireOpen('reading a data object');
    const value = this.dataObjects.get(label);
    return value ? Buffer.from(value) : null;
  }

  async destroyDataObject(label: string): Promise<void> {
    this.requireOpen('destroying a data object');
    const value = this.dataObjects.get(label);
    if (value) zeroize(value);
    this.dataObjects.delete(label);
  }

  async health(): Promise<HsmHealth> {
    const now = Date.now();
    if (this.healthCache && now - this.healthCache.checkedAt < this.healthTtlMs) return this.healthCache;
    const down = this.closed ? 'HSM adapter is closed' : this.device?.failure;
    this.healthCache = down
      ? { ok: false, checkedAt: now, latencyMs: 0, error: down }
      : { ok: true, checkedAt: now, latencyMs: 0 };
    return this.healthCache;
  }

  /** Zeroes every key and forgets it: a closed MemoryHsm holds no key bytes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.sharedKeys) {
      for (const stored of this.byLabel.values()) zeroize(stored.secret);
      this.byLabel.clear();
      for (const value of this.dataObjects.values()) zeroize(value);
      this.dataObjects.clear();
    }
    this.healthCache = undefined;
  }

  /** Parsed for each use: a long-lived KeyObject would hold the key where close() cannot zero it. */
  private privateKey(stored: StoredKey): KeyObject {
    return createPrivateKey({ key: stored.secret, format: 'der', type: 'pkcs8' });
  }

  /** A simulated device round trip: the device may go away while the call is on it. */
  private async inFlight(operation: string): Promise<void> {
    this.requireOpen(operation);
    await new Promise((resolve) => setTimeout(resolve, this.device?.delayMs));
  }

  // Failures are those Pkcs11Hsm reports for the same misuse (ckrError), so code tested on memory
  // behaves the same on a token: a key the token does not hold (CKR_OBJECT_HANDLE_INVALID), a key
  // whose usage flags do not allow the operation (CKR_KEY_FUNCTION_NOT_PERMITTED, what SoftHSM
  // answers for an HMAC key asked to encrypt), a closed module (CKR_CRYPTOKI_NOT_INITIALIZED).
  private requireOpen(operation: string): void {
    if (this.closed) throw ckrError('CKR_CRYPTOKI_NOT_INITIALIZED', operation);
    if (this.device?.failure) throw ckrError(this.device.failure, operation);
  }

  private stored(key: HsmKey, operation: string): StoredKey {
    this.requireOpen(operation);
    const stored = this.byLabel.get(key.label);
    if (!stored) throw ckrError('CKR_OBJECT_HANDLE_INVALID', operation);
    return stored;
  }

  private ofType(key: HsmKey, type: KeyType, operation: string): StoredKey {
    if (type === 'aes' && !this.capabilities.aesGcm) throw ckrError('CKR_MECHANISM_INVALID', operation);
    const stored = this.stored(key, operation);
    if (stored.type !== type) throw ckrError('CKR_KEY_FUNCTION_NOT_PERMITTED', operation);
    return stored;
  }
}
