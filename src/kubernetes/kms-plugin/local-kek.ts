/**
 * The local KEK hierarchy. Encrypt seals the apiserver's DEK seed under a random local KEK held in
 * memory (no HSM call); the KEK travels, wrapped by the root key, in the kek.keyhold.io annotation.
 * Decrypt tries the current KEK, then an LRU of KEKs unwrapped before, and only then the root key
 * (one HSM call per KEK, shared by concurrent callers). A new local KEK is made when the root
 * key's newest version changes, after MAX uses, or after a maximum age; while making one fails, the
 * old one (and its key_id) stays in use.
 */
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { zeroize } from '../../crypto/zero.js';
import { KeyholdError } from '../../errors.js';
import { KEK_ANNOTATION, decodeKekAnnotation, dekAad, encodeKekAnnotation, openDekSeed, sealDekSeed } from './envelope.js';
import { Lru } from './lru.js';
import type { RootKey } from './root-key.js';

/** Rotate after this many Encrypts (2^21, as the upstream reference does) … */
export const DEFAULT_MAX_USES = 2 ** 21;
/** … and never use one KEK for more than this many (random 96-bit IVs stay far from collision). */
export const HARD_MAX_USES = 2 ** 22 - 2 ** 16;
export const DEFAULT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** A failed wear rotation is tried again from Encrypt after this long (Status tries at every call). */
const ROTATION_RETRY_MS = 5000;

interface CurrentKek {
  keyId: string;
  annotation: Buffer;
  /** dekAad(keyId, annotation), computed once per KEK. */
  aad: Buffer;
  /** The annotations every Encrypt under this KEK returns (shared, never mutated). */
  annotations: Readonly<Record<string, Buffer>>;
  key: KeyObject;
  uses: number;
  createdAt: number;
}

export type RotationReason = 'initial' | 'root-key-version' | 'uses' | 'age';

export interface KekEvents {
  cacheHit?(): void;
  cacheMiss?(): void;
  rotated?(reason: RotationReason, keyId: string): void;
  rotationFailed?(reason: RotationReason, err: unknown): void;
}

export interface LocalKekOptions {
  maxUses?: number;
  maxAgeMs?: number;
  cacheSize?: number;
  now?: () => number;
  events?: KekEvents;
}

export interface EncryptResult {
  ciphertext: Buffer;
  keyId: string;
  annotations: Readonly<Record<string, Buffer>>;
}

export class LocalKekManager {
  #current: CurrentKek | undefined;
  #rotating: Promise<void> | undefined;
  /** After a failed rotation, wear-based attempts from Encrypt wait until then (Status still tries). */
  #retryRotationAt = 0;
  readonly #cache: Lru<string, KeyObject>;
  readonly #unwrapping = new Map<string, Promise<KeyObject>>();
  readonly #maxUses: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #events: KekEvents;

  #root: RootKey;

  constructor(root: RootKey, options: LocalKekOptions = {}) {
    this.#root = root;
    this.#maxUses = Math.min(options.maxUses ?? DEFAULT_MAX_USES, HARD_MAX_USES);
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.#cache = new Lru(options.cacheSize ?? 1024);
    this.#now = options.now ?? Date.now;
    this.#events = options.events ?? {};
  }

  /**
   * The root key reopened after it was lost (an HSM restart). The KEKs already in memory stay: they
   * are still valid, and dropping them would cost one HSM unwrap per KEK in use, all at once.
   */
  useRoot(root: RootKey): void {
    this.#root = root;
  }

  /** The key_id Encrypt uses now; undefined until the first KEK exists. */
  get keyId(): string | undefined {
    return this.#current?.keyId;
  }

  /** True while Encrypt can run without first making a KEK. */
  get usable(): boolean {
    return this.#current !== undefined && this.#current.uses < HARD_MAX_USES;
  }

  get uses(): number {
    return this.#current?.uses ?? 0;
  }

  /**
   * Makes a new KEK if there is none, the root key has a newer version, or the current one is
   * worn (uses or age). Called at start and on every Status; concurrent callers share one attempt.
   */
  async refresh(forceLookup = false): Promise<void> {
    const latest = await this.#root.latest(forceLookup);
    const reason = this.#rotationReason(latest.keyId);
    if (reason) await this.#rotate(reason);
  }

  #rotationReason(latestKeyId?: string): RotationReason | undefined {
    const current = this.#current;
    if (!current) return 'initial';
    if (latestKeyId !== undefined && current.keyId !== latestKeyId) return 'root-key-version';
    if (current.uses >= this.#maxUses) return 'uses';
    if (this.#now() - current.createdAt >= this.#maxAgeMs) return 'age';
    return undefined;
  }

  #rotate(reason: RotationReason): Promise<void> {
    this.#rotating ??= (async () => {
      const material = randomBytes(32);
      try {
        const { wrapped, keyId } = await this.#root.wrap(material);
        const annotation = encodeKekAnnotation(wrapped);
        const key = createSecretKey(material);
        this.#cache.set(cacheKey(keyId, annotation), key);
        this.#current = { keyId, annotation, aad: dekAad(keyId, annotation), annotations: Object.freeze({ [KEK_ANNOTATION]: annotation }), key, uses: 0, createdAt: this.#now() };
        this.#events.rotated?.(reason, keyId);
      } catch (err) {
        this.#retryRotationAt = this.#now() + ROTATION_RETRY_MS;
        this.#events.rotationFailed?.(reason, err);
        throw err;
      } finally {
        zeroize(material);
        this.#rotating = undefined;
      }
    })();
    return this.#rotating;
  }

  /**
   * Seals a DEK seed under the current local KEK: no HSM call unless a KEK must be made first.
   * Synchronous in steady state (no promise per call); a promise only while a KEK is being made.
   */
  encrypt(plaintext: Buffer): EncryptResult | Promise<EncryptResult> {
    const current = this.#current;
    if (!current) return this.refresh().then(() => this.encrypt(plaintext));
    if (current.uses >= HARD_MAX_USES) {
      return this.#rotate('uses').catch(() => undefined).then(() => {
        if ((this.#current as CurrentKek).uses >= HARD_MAX_USES) throw new KeyholdError('ERR_HSM_UNAVAILABLE', 'the local KEK is worn out and a new one cannot be made (root key unavailable)');
        return this.encrypt(plaintext);
      });
    }
    current.uses++;
    const ciphertext = sealDekSeed(current.key, plaintext, current.keyId, current.annotation, current.aad);
    // Wear-based rotation happens off the request path; this Encrypt already has its KEK. After a
    // failed attempt (root key away) the next one waits: not one doomed HSM call per Encrypt.
    const reason = this.#rotationReason();
    if (reason && this.#now() >= this.#retryRotationAt) this.#rotate(reason).catch(() => undefined);
    return { ciphertext, keyId: current.keyId, annotations: current.annotations };
  }

  /** Synchronous when the KEK is the current one (the common case); a promise when it must be looked up or unwrapped. */
  decrypt(ciphertext: Buffer, keyId: string, annotations: Readonly<Record<string, Buffer>>): Buffer | Promise<Buffer> {
    const annotation = annotations[KEK_ANNOTATION];
    if (!annotation) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `annotation ${KEK_ANNOTATION} is missing`);
    const current = this.#current;
    if (current && current.keyId === keyId && current.annotation.equals(annotation)) {
      this.#events.cacheHit?.();
      return openDekSeed(current.key, ciphertext, keyId, annotation, current.aad);
    }
    return this.#kekFor(keyId, annotation).then((key) => openDekSeed(key, ciphertext, keyId, annotation));
  }

  async #kekFor(keyId: string, annotation: Buffer): Promise<KeyObject> {
    const id = cacheKey(keyId, annotation);
    const cached = this.#cache.get(id);
    if (cached) {
      try {
        this.#root.assertUsable?.(keyId);
      } catch (err) {
        // Its root-key version was retired (seen at the last look-up): what it wrapped is gone.
        this.#cache.delete(id);
        throw err;
      }
      this.#events.cacheHit?.();
      return cached;
    }
    this.#events.cacheMiss?.();
    let pending = this.#unwrapping.get(id);
    if (!pending) {
      const wrapped = decodeKekAnnotation(annotation);
      pending = this.#root.unwrap(keyId, wrapped).then((material) => {
        try {
          if (material.length !== 32) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'the unwrapped KEK has the wrong length');
          const key = createSecretKey(material);
          this.#cache.set(id, key);
          return key;
        } finally {
          zeroize(material);
        }
      }).finally(() => this.#unwrapping.delete(id));
      this.#unwrapping.set(id, pending);
    }
    return pending;
  }
}

function cacheKey(keyId: string, annotation: Buffer): string {
  return `${keyId}\0${annotation.toString('base64')}`;
}
