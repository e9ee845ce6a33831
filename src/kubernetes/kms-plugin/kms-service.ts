/**
 * The KMS v2 service in typed terms, behind the gRPC edge: checks each request against the
 * contract, then hands it to the local KEK manager. Status is honest and bounded: "ok" only while
 * the root key answers its (cached) health probe and a usable KEK exists. It answers within its
 * deadline when the root key is slow in an awaited call (a keyhold server, an async HSM call); the
 * synchronous PKCS#11 look-ups (C_FindObjects, C_GetTokenInfo) cannot be cut short, so a device
 * that hangs inside one holds the event loop.
 */
import { KeyholdError } from '../../errors.js';
import type { RootKeyConnector } from './connector.js';
import { KEK_ANNOTATION, MAX_CIPHERTEXT_BYTES, MAX_PLAINTEXT_BYTES } from './envelope.js';
import { LocalKekManager, type EncryptResult, type LocalKekOptions } from './local-kek.js';

export const KMS_API_VERSION = 'v2';
const MAX_KEY_ID_BYTES = 1024;
const MAX_ANNOTATIONS_BYTES = 32 * 1024;
/** An annotation key must be a fully qualified domain name (what kube-apiserver itself requires). */
const FQDN = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface StatusResult {
  version: string;
  healthz: string;
  keyId: string;
}

export interface DecryptInput {
  ciphertext: Buffer;
  keyId: string;
  annotations: Record<string, Buffer>;
}

export interface KmsServiceOptions {
  kek?: LocalKekOptions;
  /** Status answers within this (kube-apiserver's default call timeout is 3 s). */
  statusDeadlineMs?: number;
}

export class KmsService {
  #manager: LocalKekManager | undefined;
  readonly #statusDeadlineMs: number;

  constructor(private readonly connector: RootKeyConnector, options: KmsServiceOptions = {}) {
    this.#statusDeadlineMs = options.statusDeadlineMs ?? 2000;
    connector.onConnected((root) => {
      if (this.#manager) this.#manager.useRoot(root);
      else this.#manager = new LocalKekManager(root, options.kek);
      // Make the first KEK now (or catch up with a rotation), so the first Encrypt does not wait for it.
      this.#manager.refresh().catch(() => undefined);
    });
  }

  /** Calls made to the HSM or server (for metrics and the bench). */
  get rootCalls(): number {
    return this.connector.root?.calls ?? 0;
  }

  get kekUses(): number {
    return this.#manager?.uses ?? 0;
  }

  #managerOrFail(): LocalKekManager {
    if (!this.#manager) throw new KeyholdError('ERR_HSM_UNAVAILABLE', `root key unavailable: ${this.connector.error ?? 'not connected'}`);
    return this.#manager;
  }

  async status(): Promise<StatusResult> {
    const result = (healthz: string): StatusResult => ({ version: KMS_API_VERSION, healthz, keyId: this.#manager?.keyId ?? '' });
    const manager = this.#manager;
    const root = this.connector.root;
    if (!manager || !root) return result(`root key unavailable: ${this.connector.error ?? 'not connected'}`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`status check did not finish within ${this.#statusDeadlineMs} ms`), this.#statusDeadlineMs);
    });
    const check = (async (): Promise<string> => {
      const health = await root.health();
      if (!health.ok) return health.error ?? 'root key unhealthy';
      // A rotated root key shows here: the next Status after it reports the new key_id.
      await manager.refresh(true);
      return manager.usable ? 'ok' : 'no usable local KEK';
    })().catch((err: unknown) => `root key check failed: ${err instanceof Error ? err.message : String(err)}`);
    try {
      return result(await Promise.race([check, deadline]));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Throws or returns synchronously where it can: the gRPC edge handles both. */
  encrypt(plaintext: Buffer): EncryptResult | Promise<EncryptResult> {
    if (plaintext.length === 0 || plaintext.length > MAX_PLAINTEXT_BYTES) {
      throw new KeyholdError('ERR_PLAINTEXT_TOO_LARGE', `plaintext must be 1..${MAX_PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
    }
    return this.#managerOrFail().encrypt(plaintext);
  }

  decrypt(input: DecryptInput): Buffer | Promise<Buffer> {
    checkDecryptInput(input);
    return this.#managerOrFail().decrypt(input.ciphertext, input.keyId, input.annotations);
  }
}

/** What Decrypt must be given back is exactly what Encrypt returned; anything else is refused here. */
export function checkDecryptInput(input: DecryptInput): void {
  if (input.ciphertext.length === 0 || input.ciphertext.length > MAX_CIPHERTEXT_BYTES) {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `ciphertext must be 1..${MAX_CIPHERTEXT_BYTES} bytes, got ${input.ciphertext.length}`);
  }
  if (input.keyId === '' || Buffer.byteLength(input.keyId, 'utf8') > MAX_KEY_ID_BYTES) {
    throw new KeyholdError('ERR_BAD_REQUEST', `key_id must be 1..${MAX_KEY_ID_BYTES} bytes`);
  }
  let total = 0;
  for (const [key, value] of Object.entries(input.annotations)) {
    if (key !== KEK_ANNOTATION) {
      if (!FQDN.test(key)) throw new KeyholdError('ERR_BAD_REQUEST', `annotation key ${JSON.stringify(key.slice(0, 64))} is not a fully qualified domain name`);
      throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `unexpected annotation ${key}: keyhold did not write it`);
    }
    total += Buffer.byteLength(key) + value.length;
  }
  if (total > MAX_ANNOTATIONS_BYTES) throw new KeyholdError('ERR_BAD_REQUEST', `annotations exceed ${MAX_ANNOTATIONS_BYTES} bytes`);
  if (!(KEK_ANNOTATION in input.annotations)) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `annotation ${KEK_ANNOTATION} is missing`);
}
