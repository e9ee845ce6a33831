import { createHash, publicEncrypt, constants as cryptoConstants, randomBytes, type KeyObject } from 'node:crypto';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from '../crypto/aead.js';
import { poolRandomBytes } from '../crypto/random-pool.js';
import pkcs11 from 'pkcs11js';
import { KeyholdError } from '../errors.js';
import { ckrError, ckrName, hsmError } from './ckr.js';
import * as dataObjects from './pkcs11-data-objects.js';
import { resolvePin, type HsmConfig } from './config.js';
import { keyClassOf, keySpec, OAEP_PARAMS, type AsymmetricSpec } from './mechanisms.js';
import { ecPublicKey, rsaPublicKey } from './public-key.js';
import { SessionPool } from './session-pool.js';
import type {
  GeneratedHsmKey, Hsm, HsmCapabilities, HsmHealth, HsmKey, HsmKeyAttributes, HsmKeyKind, HsmTokenInfo, OaepHash,
} from './types.js';

/** PKCS#11 session states (pkcs11js does not export them). */
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;
/** CKR values that mean "this ciphertext is not authentic" rather than "the device failed". SoftHSM reports a bad GCM tag as CKR_GENERAL_ERROR. */
const CIPHERTEXT_REJECTED = new Set(['CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE', 'CKR_GENERAL_ERROR', 'CKR_DATA_LEN_RANGE']);

function trimPadded(value: string): string {
  return value.replace(/[\s\0]+$/, '');
}

function slotIdString(slot: Buffer): string {
  return slot.length >= 8 ? slot.readBigUInt64LE(0).toString() : String(slot.readUIntLE(0, slot.length));
}

/**
 * Node hands the addon a NULL data pointer for an empty Buffer, and SoftHSM answers C_Encrypt /
 * C_Sign with a NULL input by CKR_ARGUMENTS_BAD *without* ending the operation, which then leaves
 * the pooled session stuck in CKR_OPERATION_ACTIVE. A zero-length view of real memory is not NULL.
 */
function input(data: Buffer): Buffer {
  return data.length > 0 ? data : Buffer.alloc(1).subarray(0, 0);
}

function bool(value: Buffer | undefined): boolean {
  return value !== undefined && value.length > 0 && value[0] !== 0;
}

export interface Pkcs11HsmOptions {
  /** Told about a low PIN counter; never told the PIN. */
  warn?: (message: string) => void;
  /**
   * Narrows what probing found, e.g. to exercise the decrypt-only path (Nitrokey-like tokens) on
   * SoftHSM in tests. It can only take capabilities away.
   */
  withoutCapabilities?: Array<keyof HsmCapabilities>;
  /**
   * label → CKA_ID of the keys this process knows, shared by every connection to one cluster and
   * kept across reconnects: a key found again (after a reconnect, or on another member) must carry
   * the id it had, so a different object put under the same label is refused, never used.
   */
  keyIds?: Map<string, Buffer>;
}

/** CKRs that say a cached object handle no longer names an object: the label is looked up again. */
const HANDLE_GONE = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

/**
 * The PKCS#11 adapter over pkcs11js. One control session serves synchronous look-ups; a pool of
 * sessions serves crypto operations through pkcs11js' *Async calls, which run on libuv's thread
 * pool so the event loop keeps serving while the token works (bench/hsm-dispatch.ts measures the
 * alternatives).
 */
/**
 * Instances open in this process per module path. A PKCS#11 module is initialised once per process:
 * C_Finalize (or C_CloseAllSessions) from one instance would pull the token from under the others,
 * so each closes only its own sessions and the last one finalises.
 */
const moduleUsers = new Map<string, number>();

function releaseModule(lib: pkcs11.PKCS11, modulePath: string, sessions: Set<Buffer>): void {
  for (const session of sessions) {
    try { lib.C_CloseSession(session); } catch { /* closing anyway */ }
  }
  sessions.clear();
  if ((moduleUsers.get(modulePath) ?? 0) > 0) return;
  moduleUsers.delete(modulePath);
  try { lib.C_Finalize(); } catch { /* closing anyway */ }
  try { lib.close(); } catch { /* closing anyway */ }
}

export class Pkcs11Hsm implements Hsm {
  /** label → object handle on this connection; handles die with the connection. */
  private readonly handles = new Map<string, Buffer>();
  private readonly publicHandles = new Map<string, Buffer>();
  /** Labels being generated right now: the token shows them only once generation ends. */
  private readonly generating = new Set<string>();
  /**
   * Token-object writes (generate, destroy) run one at a time in this process. SoftHSM's file-backed
   * object store races when two threads create or remove objects at once: C_GenerateKey failed with
   * CKR_GENERAL_ERROR under the API fuzz (and upstream reports the same for concurrent
   * C_GenerateKeyPair/C_CreateObject). Key creation is rare, so one queue costs nothing that matters,
   * on SoftHSM or on a real HSM; crypto calls are not queued.
   */
  private objectWrites: Promise<unknown> = Promise.resolve();
  private healthCache: HsmHealth | undefined;
  private calls = 0;
  private closed = false;

  private constructor(
    private readonly lib: pkcs11.PKCS11,
    private readonly slot: Buffer,
    private readonly control: Buffer,
    private readonly pool: SessionPool,
    readonly token: HsmTokenInfo,
    readonly capabilities: HsmCapabilities,
    private readonly healthTtlMs: number,
    private readonly modulePath: string,
    /** The sessions this instance opened: another instance in the process may use the same module and token. */
    private readonly owned: Set<Buffer>,
    private readonly keyIds: Map<string, Buffer>,
  ) {}

  /**
   * Loads the module, finds the token, logs in once and probes what the token can do. A wrong PIN
   * fails at once: there is no retry loop that could count down the token's PIN tries.
   */
  static async open(config: HsmConfig, options: Pkcs11HsmOptions = {}): Promise<Pkcs11Hsm> {
    // No await before C_Initialize (nor after, today): openHsm sets a member's `env` in
    // process.env around this call, and the module reads it at C_Initialize.
    const pin = resolvePin(config);
    const lib = new pkcs11.PKCS11();
    try {
      lib.load(config.module);
    } catch (cause) {
      throw new KeyholdError('ERR_HSM_MODULE', `cannot load PKCS#11 module ${config.module}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    const owned = new Set<Buffer>();
    try {
      try {
        // Without OS locking, concurrent sessions crashed SoftHSM in 5 of 7 runs.
        lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
      } catch (err) {
        if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw hsmError(err, 'initialize');
      }
      const slot = findSlot(lib, config);
      const info = lib.C_GetTokenInfo(slot);
      if (info.flags & pkcs11.CKF_USER_PIN_LOCKED) {
        throw new KeyholdError('ERR_HSM_PIN_LOCKED', `the user PIN of token "${trimPadded(info.label)}" is locked; an SO must reset it`);
      }
      if (info.flags & pkcs11.CKF_USER_PIN_FINAL_TRY) {
        // One more wrong PIN locks the token. Refusing here keeps a crash-looping pod from doing it.
        throw new KeyholdError('ERR_HSM_PIN_INCORRECT', `token "${trimPadded(info.label)}" is one failed login from locking its user PIN; keyhold will not try. Check the PIN, log in once by hand, then restart`);
      }
      if (info.flags & pkcs11.CKF_USER_PIN_COUNT_LOW) options.warn?.('HSM user PIN retry counter is low: a recent login used a wrong PIN');
      const flags = pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION;
      const control = lib.C_OpenSession(slot, flags);
      owned.add(control);
      try {
        lib.C_Login(control, pkcs11.CKU_USER, pin);
      } catch (err) {
        if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') {
          const mapped = hsmError(err, 'login');
          if (mapped.code === 'ERR_HSM_PIN_INCORRECT') {
            throw new KeyholdError('ERR_HSM_PIN_INCORRECT', `HSM login to token "${trimPadded(info.label)}" failed: the PIN is incorrect (not retried)`);
          }
          throw mapped;
        }
      }
      const sessions: Buffer[] = [];
      for (let i = 0; i < Math.max(1, config.sessions ?? 4); i++) sessions.push(lib.C_OpenSession(slot, flags));
      const token: HsmTokenInfo = {
        label: trimPadded(info.label),
        manufacturer: trimPadded(info.manufacturerID),
        model: trimPadded(info.model),
        serial: trimPadded(info.serialNumber),
        slotId: slotIdString(slot),
      };
      const renew = (broken: Buffer): Buffer => {
        try { lib.C_CloseSession(broken); } catch { /* already unusable */ }
        owned.delete(broken);
        const fresh = lib.C_OpenSession(slot, flags);
        owned.add(fresh);
        return fresh;
      };
      for (const session of sessions) owned.add(session);
      const capabilities = probeCapabilities(lib, slot);
      for (const name of options.withoutCapabilities ?? []) capabilities[name] = false;
      moduleUsers.set(config.module, (moduleUsers.get(config.module) ?? 0) + 1);
      return new Pkcs11Hsm(lib, slot, control, new SessionPool(sessions, renew), token, capabilities, (config.healthCacheSeconds ?? 5) * 1000, config.module, owned, options.keyIds ?? new Map());
    } catch (err) {
      releaseModule(lib, config.module, owned);
      throw hsmError(err, 'open');
    }
  }

  get callCount(): number {
    return this.calls;
  }

  findKey(label: string, kind: HsmKeyKind): HsmKey | null {
    return this.handles.has(label) || this.lookUp(label, kind) ? { label, kind } : null;
  }

  /** Drops a cached handle (the pool calls it when another connection destroyed or made the key). */
  forget(label: string): void {
    this.handles.delete(label);
  }

  /**
   * Finds the key on the token by label and checks its CKA_ID against the one this process knows:
   * after a reconnect or on another member, a different object under the same label is refused.
   */
  private lookUp(label: string, kind: HsmKeyKind): Buffer | null {
    if (this.closed) throw closedError('find');
    let found: Buffer[];
    let id: Buffer;
    try {
      found = this.findObjects([
        { type: pkcs11.CKA_CLASS, value: keyClassOf(kind) },
        { type: pkcs11.CKA_LABEL, value: label },
        { type: pkcs11.CKA_TOKEN, value: true },
      ]);
      if (found.length > 1) throw new KeyholdError('ERR_HSM', `more than one HSM key is labelled "${label}"`);
      if (!found[0]) return null;
      id = this.readId(found[0]);
    } catch (err) {
      throw hsmError(err, 'find');
    }
    const handle = found[0];
    const known = this.keyIds.get(label);
    if (known && !known.equals(id)) {
      throw new KeyholdError('ERR_HSM_KEY_MISSING', `the HSM object labelled "${label}" is not the key keyhold knows (its CKA_ID differs); refusing to use it`);
    }
    if (!known) this.keyIds.set(label, id);
    this.handles.set(label, handle);
    return handle;
  }

  /** The handle of a key on this connection: cached, else found again by label and id. */
  private handleOf(key: HsmKey, operation: string): Buffer {
    const cached = this.handles.get(key.label);
    if (cached && !this.closed) return cached;
    const found = this.lookUp(key.label, key.kind);
    if (!found) throw ckrError('CKR_OBJECT_HANDLE_INVALID', operation);
    return found;
  }

  /** After a failed call: a handle the token no longer knows is looked up again next time. */
  private failed(key: HsmKey, err: unknown): void {
    const ckr = ckrName(err);
    if (ckr && HANDLE_GONE.has(ckr)) this.handles.delete(key.label);
  }

  private readId(handle: Buffer): Buffer {
    const [attr] = this.lib.C_GetAttributeValue(this.control, handle, [{ type: pkcs11.CKA_ID }]);
    return Buffer.from((attr?.value as Buffer | undefined) ?? Buffer.alloc(0));
  }

  listKeys(labelPrefix: string, kind: HsmKeyKind): HsmKey[] {
    // PKCS#11 finds by exact attribute values only, so the prefix is matched on the labels read back.
    // Kinds sharing a key type (ec-p256/ec-p384, the RSA sizes) are not told apart here.
    const keys: HsmKey[] = [];
    if (this.closed) throw closedError('listing keys');
    this.lib.C_FindObjectsInit(this.control, [
      { type: pkcs11.CKA_CLASS, value: keyClassOf(kind) },
      { type: pkcs11.CKA_KEY_TYPE, value: keySpec(kind).keyType },
      { type: pkcs11.CKA_TOKEN, value: true },
    ]);
    try {
      for (let batch = this.lib.C_FindObjects(this.control, 64); batch.length > 0; batch = this.lib.C_FindObjects(this.control, 64)) {
        for (const handle of batch) {
          const [attr] = this.lib.C_GetAttributeValue(this.control, handle, [{ type: pkcs11.CKA_LABEL }]);
          const label = (attr?.value as Buffer | undefined)?.toString('utf8') ?? '';
          if (label.startsWith(labelPrefix)) keys.push({ label, kind });
        }
      }
    } catch (err) {
      throw hsmError(err, 'listing keys');
    } finally {
      this.lib.C_FindObjectsFinal(this.control);
    }
    return keys;
  }

  objectId(key: HsmKey): Buffer {
    try {
      return this.readId(this.handleOf(key, 'reading CKA_ID'));
    } catch (err) {
      this.failed(key, err);
      throw hsmError(err, 'reading CKA_ID');
    }
  }

  async findOrCreateKey(label: string, kind: HsmKeyKind): Promise<HsmKey> {
    return this.findKey(label, kind) ?? this.generateKey(label, kind);
  }

  async generateKey(label: string, kind: HsmKeyKind): Promise<GeneratedHsmKey> {
    if (this.closed) throw closedError('key generation');
    const taken = () => new KeyholdError('ERR_CONFLICT', `an HSM key labelled "${label}" already exists`);
    // Reserved before the first await, so two concurrent calls cannot both create the label.
    if (this.generating.has(label) || this.handles.has(label)) throw taken();
    this.generating.add(label);
    const spec = keySpec(kind);
    const id = randomBytes(16);
    this.calls++;
    try {
      return await this.oneObjectWriteAtATime(async () => {
      // Searched for on the token only here, in the write queue: SoftHSM fails a token-object
      // generation (CKR_GENERAL_ERROR, measured: 14 of 60) while a C_FindObjects runs on another
      // session, so a search outside the queue made concurrent rotations fail now and then.
      if (this.findKey(label, kind)) throw taken();
      if (spec.family === 'secret') {
        const handle = await this.pool.use((s) => this.lib.C_GenerateKeyAsync(s, { mechanism: spec.genMechanism }, spec.template(label, id)));
        this.handles.set(label, handle);
        this.keyIds.set(label, id);
        return { label, kind };
      }
      const pair = await this.pool.use((s) =>
        this.lib.C_GenerateKeyPairAsync(s, { mechanism: spec.genMechanism }, spec.publicTemplate(label, id), spec.privateTemplate(label, id)),
      );
      const publicKey = this.readPublicKey(pair.publicKey, kind, spec);
      // The public half was a session object of a pooled session; keyhold keeps its value instead.
      this.lib.C_DestroyObject(this.control, pair.publicKey);
      this.handles.set(label, pair.privateKey);
      this.keyIds.set(label, id);
      return { label, kind, publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }) };
      });
    } catch (err) {
      throw hsmError(err, 'key generation');
    } finally {
      this.generating.delete(label);
    }
  }

  async destroyKey(key: HsmKey): Promise<void> {
    if (this.closed) throw closedError('destroy');
    try {
      await this.oneObjectWriteAtATime(async () => {
        // Already gone from the token (or never found here): nothing to destroy. A different
        // object under the label is refused by lookUp, and its id stays known.
        const handle = this.handles.get(key.label) ?? this.lookUp(key.label, key.kind);
        if (handle) this.lib.C_DestroyObject(this.control, handle);
      });
    } catch (err) {
      if (ckrName(err) !== 'CKR_OBJECT_HANDLE_INVALID') throw hsmError(err, 'destroy');
    }
    this.handles.delete(key.label);
    this.keyIds.delete(key.label);
    this.dropPublicHandle(key.label);
  }

  private dropPublicHandle(label: string): void {
    const pub = this.publicHandles.get(label);
    if (!pub) return;
    this.publicHandles.delete(label);
    try { this.lib.C_DestroyObject(this.control, pub); } catch { /* session object: gone with its session anyway */ }
  }

  async aesGcmEncrypt(key: HsmKey, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    const iv = poolRandomBytes(GCM_IV_BYTES);
    this.calls++;
    try {
      const handle = this.handleOf(key, 'AES-GCM encrypt');
      const out = await this.pool.use((s) => {
        this.lib.C_EncryptInit(s, gcmMechanism(iv, aad), handle);
        return this.lib.C_EncryptAsync(s, input(plaintext), Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
      });
      return Buffer.concat([iv, out]);
    } catch (err) {
      this.failed(key, err);
      throw hsmError(err, 'AES-GCM encrypt');
    }
  }

  async aesGcmDecrypt(key: HsmKey, blob: Buffer, aad: Buffer): Promise<Buffer> {
    if (blob.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext is too short');
    const iv = blob.subarray(0, GCM_IV_BYTES);
    const body = blob.subarray(GCM_IV_BYTES);
    this.calls++;
    try {
      const handle = this.handleOf(key, 'AES-GCM decrypt');
      return await this.pool.use((s) => {
        this.lib.C_DecryptInit(s, gcmMechanism(iv, aad), handle);
        return this.lib.C_DecryptAsync(s, body, Buffer.alloc(body.length));
      });
    } catch (err) {
      this.failed(key, err);
      throw this.decryptError(err, 'AES-GCM decrypt');
    }
  }

  async hmacSha256(key: HsmKey, data: Buffer): Promise<Buffer> {
    this.calls++;
    try {
      const handle = this.handleOf(key, 'HMAC');
      return await this.pool.use((s) => {
        this.lib.C_SignInit(s, { mechanism: pkcs11.CKM_SHA256_HMAC }, handle);
        return this.lib.C_SignAsync(s, input(data), Buffer.alloc(32));
      });
    } catch (err) {
      this.failed(key, err);
      throw hsmError(err, 'HMAC');
    }
  }

  async sign(key: HsmKey, data: Buffer): Promise<Buffer> {
    const spec = keySpec(key.kind);
    if (spec.family === 'secret') throw new KeyholdError('ERR_KEY_OPERATION_UNSUPPORTED', `${key.kind} keys do not sign`);
    const digest = createHash(spec.digest).update(data).digest();
    const mechanism: pkcs11.Mechanism = spec.family === 'ec'
      ? { mechanism: pkcs11.CKM_ECDSA }
      : { mechanism: pkcs11.CKM_RSA_PKCS_PSS, parameter: { type: pkcs11.CK_PARAMS_RSA_PSS, hashAlg: pkcs11.CKM_SHA256, mgf: pkcs11.CKG_MGF1_SHA256, saltLen: 32 } as pkcs11.RsaPSS };
    this.calls++;
    try {
      const handle = this.handleOf(key, 'sign');
      return await this.pool.use((s) => {
        this.lib.C_SignInit(s, mechanism, handle);
        return this.lib.C_SignAsync(s, digest, Buffer.alloc(1024));
      });
    } catch (err) {
      this.failed(key, err);
      throw hsmError(err, 'sign');
    }
  }

  async rsaEncrypt(key: HsmKey, publicKey: KeyObject, plaintext: Buffer, hash: OaepHash): Promise<Buffer> {
    if (!this.capabilities.rsaOaepEncryptOnDevice) {
      return publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
    }
    this.calls++;
    try {
      if (this.closed) throw closedError('RSA-OAEP encrypt');
      const handle = this.publicHandle(key, publicKey);
      return await this.pool.use((s) => {
        this.lib.C_EncryptInit(s, oaepMechanism(hash), handle);
        return this.lib.C_EncryptAsync(s, input(plaintext), Buffer.alloc(1024));
      });
    } catch (err) {
      throw hsmError(err, 'RSA-OAEP encrypt');
    }
  }

  async rsaDecrypt(key: HsmKey, ciphertext: Buffer, hash: OaepHash): Promise<Buffer> {
    this.calls++;
    try {
      const handle = this.handleOf(key, 'RSA-OAEP decrypt');
      return await this.pool.use((s) => {
        this.lib.C_DecryptInit(s, oaepMechanism(hash), handle);
        return this.lib.C_DecryptAsync(s, ciphertext, Buffer.alloc(1024));
      });
    } catch (err) {
      this.failed(key, err);
      throw this.decryptError(err, 'RSA-OAEP decrypt');
    }
  }

  async probeOaepHash(key: HsmKey, publicKey: KeyObject): Promise<OaepHash> {
    const probe = randomBytes(16);
    for (const hash of ['sha256', 'sha1'] as const) {
      const ciphertext = publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, probe);
      try {
        const back = await this.rsaDecrypt(key, ciphertext, hash);
        if (back.equals(probe)) return hash;
      } catch (err) {
        // SoftHSM 2.6 answers CKR_ARGUMENTS_BAD to OAEP-SHA-256; try the next hash. A gone device is not an answer.
        if (err instanceof KeyholdError && err.code === 'ERR_HSM_UNAVAILABLE') throw err;
      }
    }
    throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token decrypts neither RSA-OAEP-SHA-256 nor RSA-OAEP-SHA-1');
  }

  attributes(key: HsmKey): HsmKeyAttributes {
    const types = [pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_NEVER_EXTRACTABLE, pkcs11.CKA_ALWAYS_SENSITIVE];
    const handle = this.handleOf(key, 'reading attributes');
    const values = this.lib.C_GetAttributeValue(this.control, handle, types.map((type) => ({ type })));
    const read = (type: number) => bool(values.find((a) => a.type === type)?.value as Buffer | undefined);
    const secretAttribute = keySpec(key.kind).family === 'rsa' ? pkcs11.CKA_PRIVATE_EXPONENT : pkcs11.CKA_VALUE;
    let valueReadRefused = false;
    try {
      const got = this.lib.C_GetAttributeValue(this.control, handle, [{ type: secretAttribute }]);
      valueReadRefused = !(got[0]?.value instanceof Buffer) || got[0].value.length === 0;
    } catch (err) {
      valueReadRefused = ckrName(err) === 'CKR_ATTRIBUTE_SENSITIVE';
    }
    return {
      token: read(pkcs11.CKA_TOKEN),
      private: read(pkcs11.CKA_PRIVATE),
      sensitive: read(pkcs11.CKA_SENSITIVE),
      extractable: read(pkcs11.CKA_EXTRACTABLE),
      neverExtractable: read(pkcs11.CKA_NEVER_EXTRACTABLE),
      alwaysSensitive: read(pkcs11.CKA_ALWAYS_SENSITIVE),
      valueReadRefused,
    };
  }

  // Data objects (pkcs11-data-objects.ts): token writes go through the same one-at-a-time queue as keys.
  async putDataObject(label: string, value: Buffer): Promise<void> {
    await this.oneObjectWriteAtATime(async () => dataObjects.putDataObject(this.lib, this.control, label, value));
  }

  async getDataObject(label: string): Promise<Buffer | null> {
    return dataObjects.getDataObject(this.lib, this.control, label);
  }

  async destroyDataObject(label: string): Promise<void> {
    await this.oneObjectWriteAtATime(async () => dataObjects.destroyDataObject(this.lib, this.control, label));
  }

  async health(): Promise<HsmHealth> {
    const now = Date.now();
    if (this.healthCache && now - this.healthCache.checkedAt < this.healthTtlMs) return this.healthCache;
    this.healthCache = this.probe();
    return this.healthCache;
  }

  /** Uncached: the session is still logged in and the token answers (two cheap calls, no crypto). */
  probe(): HsmHealth {
    const now = Date.now();
    const started = process.hrtime.bigint();
    let result: HsmHealth;
    try {
      if (this.closed) throw new Error('HSM adapter is closed');
      const session = this.lib.C_GetSessionInfo(this.control);
      if (session.state !== CKS_RW_USER_FUNCTIONS && session.state !== CKS_RO_USER_FUNCTIONS) {
        throw new Error('session is no longer logged in');
      }
      this.lib.C_GetTokenInfo(this.slot);
      result = { ok: true, checkedAt: now, latencyMs: Number(process.hrtime.bigint() - started) / 1e6 };
    } catch (err) {
      result = { ok: false, checkedAt: now, latencyMs: Number(process.hrtime.bigint() - started) / 1e6, error: hsmError(err, 'health probe').message };
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    moduleUsers.set(this.modulePath, (moduleUsers.get(this.modulePath) ?? 1) - 1);
    releaseModule(this.lib, this.modulePath, this.owned);
  }

  private decryptError(err: unknown, operation: string): KeyholdError {
    const ckr = ckrName(err);
    if (ckr && CIPHERTEXT_REJECTED.has(ckr)) {
      return new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed authentication', { cause: err });
    }
    return hsmError(err, operation);
  }

  private findObjects(template: pkcs11.Template): Buffer[] {
    this.lib.C_FindObjectsInit(this.control, template);
    try {
      return this.lib.C_FindObjects(this.control, 2);
    } finally {
      this.lib.C_FindObjectsFinal(this.control);
    }
  }

  private oneObjectWriteAtATime<T>(write: () => Promise<T>): Promise<T> {
    const result = this.objectWrites.then(write);
    this.objectWrites = result.catch(() => undefined);
    return result;
  }

  private readPublicKey(handle: Buffer, kind: HsmKeyKind, spec: AsymmetricSpec): KeyObject {
    if (spec.family === 'ec') {
      const [point] = this.lib.C_GetAttributeValue(this.control, handle, [{ type: pkcs11.CKA_EC_POINT }]);
      return ecPublicKey(kind === 'ec-p256' ? 'P-256' : 'P-384', point?.value as Buffer);
    }
    const attrs = this.lib.C_GetAttributeValue(this.control, handle, [{ type: pkcs11.CKA_MODULUS }, { type: pkcs11.CKA_PUBLIC_EXPONENT }]);
    return rsaPublicKey(attrs[0]?.value as Buffer, attrs[1]?.value as Buffer);
  }

  /** A session object carrying the public half, for tokens that encrypt on the device. */
  private publicHandle(key: HsmKey, publicKey: KeyObject): Buffer {
    const cached = this.publicHandles.get(key.label);
    if (cached) return cached;
    const jwk = publicKey.export({ format: 'jwk' });
    const handle = this.lib.C_CreateObject(this.control, [
      { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_PUBLIC_KEY },
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_RSA },
      { type: pkcs11.CKA_TOKEN, value: false },
      { type: pkcs11.CKA_ENCRYPT, value: true },
      { type: pkcs11.CKA_VERIFY, value: false },
      { type: pkcs11.CKA_WRAP, value: false },
      { type: pkcs11.CKA_MODULUS, value: Buffer.from(jwk.n ?? '', 'base64url') },
      { type: pkcs11.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e ?? '', 'base64url') },
    ]);
    this.publicHandles.set(key.label, handle);
    return handle;
  }
}

/** A call on a closed connection never reaches the module (its functions may be unloaded): "device gone". */
function closedError(operation: string): KeyholdError {
  return ckrError('CKR_CRYPTOKI_NOT_INITIALIZED', operation);
}

function gcmMechanism(iv: Buffer, aad: Buffer): pkcs11.Mechanism {
  // The v2.40 parameter shape with ivBits: the older one leaves a field uninitialised.
  return { mechanism: pkcs11.CKM_AES_GCM, parameter: { type: pkcs11.CK_PARAMS_AES_GCM_v240, iv, ivBits: GCM_IV_BYTES * 8, aad, tagBits: GCM_TAG_BYTES * 8 } as pkcs11.GcmParams };
}

function oaepMechanism(hash: OaepHash): pkcs11.Mechanism {
  return { mechanism: pkcs11.CKM_RSA_PKCS_OAEP, parameter: { type: pkcs11.CK_PARAMS_RSA_OAEP, ...OAEP_PARAMS[hash], source: 1 /* CKZ_DATA_SPECIFIED */ } as pkcs11.RsaOAEP };
}

function findSlot(lib: pkcs11.PKCS11, config: HsmConfig): Buffer {
  const slots = lib.C_GetSlotList(true);
  if (config.slot !== undefined) {
    const slot = slots.find((s) => slotIdString(s) === config.slot);
    if (!slot) throw new KeyholdError('ERR_HSM_TOKEN_NOT_FOUND', `no token present in HSM slot ${config.slot}`);
    return slot;
  }
  if (!config.tokenLabel) throw new KeyholdError('ERR_CONFIG', 'set hsm.tokenLabel or hsm.slot');
  const matches = slots.filter((s) => trimPadded(lib.C_GetTokenInfo(s).label) === config.tokenLabel);
  if (matches.length === 0) throw new KeyholdError('ERR_HSM_TOKEN_NOT_FOUND', `no HSM token labelled "${config.tokenLabel}"`);
  if (matches.length > 1) throw new KeyholdError('ERR_CONFIG', `several HSM tokens are labelled "${config.tokenLabel}"; select one with hsm.slot`);
  return matches[0] as Buffer;
}

function probeCapabilities(lib: pkcs11.PKCS11, slot: Buffer): HsmCapabilities {
  const available = new Set(lib.C_GetMechanismList(slot));
  const flagsOf = (mech: number): number => (available.has(mech) ? lib.C_GetMechanismInfo(slot, mech).flags : 0);
  const has = (mech: number, flag: number) => (flagsOf(mech) & flag) === flag;
  return {
    aesGcm: has(pkcs11.CKM_AES_GCM, pkcs11.CKF_ENCRYPT | pkcs11.CKF_DECRYPT),
    aesKeyWrapPad: available.has(pkcs11.CKM_AES_KEY_WRAP_PAD),
    hmacSha256: has(pkcs11.CKM_SHA256_HMAC, pkcs11.CKF_SIGN),
    ecdsa: has(pkcs11.CKM_ECDSA, pkcs11.CKF_SIGN),
    rsaPss: has(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKF_SIGN),
    rsaOaepDecrypt: has(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT),
    rsaOaepEncryptOnDevice: has(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_ENCRYPT),
    ecKeyGen: has(pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR),
    rsaKeyGen: has(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR),
  };
}
