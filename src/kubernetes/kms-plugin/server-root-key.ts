/**
 * Server mode: the root key is a key of a keyhold server (either protection), used through its
 * HTTP API with a token that may read, encrypt and decrypt that key. Rotating the key on the
 * server makes a new version; retiring one is the server's min_decryption_version.
 */
import { KeyholdApiError, type KeyDescription, type KeyholdClient } from '../../client/client.js';
import { KeyholdError } from '../../errors.js';
import { deriveKeyId } from './key-id.js';
import { KEK_WRAP_CONTEXT, type RootKey, type RootKeyHealth, type RootKeyVersion } from './root-key.js';

/** keyhold ciphertexts name their key and version: `keyhold:<name>:v<N>:<base64>`. */
const CIPHERTEXT_VERSION = /^keyhold:[^:]+:v([1-9]\d{0,8}):/;

export interface ServerRootKeyOptions {
  refreshMs?: number;
}

export class ServerRootKey implements RootKey {
  readonly description: string;
  readonly reopenWhenLost = false;
  #description: KeyDescription | undefined;
  #versionByKeyId = new Map<string, number>();
  #keyIdByVersion = new Map<number, string>();
  #refreshedAt = 0;
  #refreshing: Promise<void> | undefined;
  #calls = 0;

  constructor(private readonly client: KeyholdClient, private readonly keyName: string, address: string, options: ServerRootKeyOptions = {}) {
    this.description = `keyhold server ${address}, key "${keyName}"`;
    this.refreshMs = options.refreshMs ?? 5000;
  }

  private readonly refreshMs: number;

  get calls(): number {
    return this.#calls;
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        this.#calls++;
        const key = await this.client.getKey(this.keyName);
        if (key.type !== 'aes256-gcm') throw new KeyholdError('ERR_CONFIG', `server key "${this.keyName}" is ${key.type}; the KMS plugin needs an aes256-gcm key`);
        for (const v of key.versions) {
          const keyId = deriveKeyId(['keyhold-server', this.keyName, key.created_at, String(v.version), v.created_at]);
          this.#versionByKeyId.set(keyId, v.version);
          this.#keyIdByVersion.set(v.version, keyId);
        }
        this.#description = key;
        this.#refreshedAt = Date.now();
      } catch (err) {
        throw serverError(err);
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  async latest(force = false): Promise<RootKeyVersion> {
    if (force || !this.#description || Date.now() - this.#refreshedAt >= this.refreshMs) await this.#refresh();
    const key = this.#description as KeyDescription;
    return { version: key.latest_version, keyId: this.#keyIdOf(key.latest_version) };
  }

  #keyIdOf(version: number): string {
    const keyId = this.#keyIdByVersion.get(version);
    if (!keyId) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `server key "${this.keyName}" has no version ${version}`);
    return keyId;
  }

  assertUsable(keyId: string): void {
    const version = this.#versionByKeyId.get(keyId);
    const min = this.#description?.min_decryption_version ?? 0;
    if (version !== undefined && version < min) throw new KeyholdError('ERR_KEY_VERSION_RETIRED', `keyhold server: version ${version} of "${this.keyName}" is below its min_decryption_version ${min}`);
  }

  async wrap(kek: Buffer): Promise<{ wrapped: Buffer; keyId: string }> {
    this.#calls++;
    const result = await this.client.encrypt(this.keyName, kek, KEK_WRAP_CONTEXT).catch((err: unknown) => { throw serverError(err); });
    // The server encrypts under its newest version, which may be newer than our last look-up.
    if (!this.#keyIdByVersion.has(result.version)) await this.#refresh();
    return { wrapped: Buffer.from(result.ciphertext, 'utf8'), keyId: this.#keyIdOf(result.version) };
  }

  async unwrap(keyId: string, wrapped: Buffer): Promise<Buffer> {
    let version = this.#versionByKeyId.get(keyId);
    if (version === undefined) {
      await this.#refresh();
      version = this.#versionByKeyId.get(keyId);
    }
    if (version === undefined) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `unknown key_id: no version of server key "${this.keyName}" has it`);
    const ciphertext = wrapped.toString('utf8');
    const match = CIPHERTEXT_VERSION.exec(ciphertext);
    if (!match || Number(match[1]) !== version) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'the wrapped KEK in the annotation does not belong to its key_id');
    this.#calls++;
    return this.client.decrypt(this.keyName, ciphertext, KEK_WRAP_CONTEXT).catch((err: unknown) => { throw serverError(err); });
  }

  async health(): Promise<RootKeyHealth> {
    try {
      await this.latest();
      return { ok: true };
    } catch (err) {
      return { ok: false, error: `keyhold server key "${this.keyName}" unavailable: ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every call is its own HTTP request.
  }
}

/** Server API errors keep their code where the plugin has the same one; an unreachable server is unavailability. */
function serverError(err: unknown): KeyholdError {
  if (err instanceof KeyholdError) return err;
  if (err instanceof KeyholdApiError) {
    switch (err.code) {
      case 'ERR_CIPHERTEXT_INVALID': return new KeyholdError('ERR_CIPHERTEXT_INVALID', `keyhold server: ${err.message}`);
      case 'ERR_KEY_VERSION_RETIRED': return new KeyholdError('ERR_KEY_VERSION_RETIRED', `keyhold server: ${err.message}`);
      case 'ERR_KEY_VERSION_NOT_FOUND': return new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `keyhold server: ${err.message}`);
      case 'ERR_PERMISSION_DENIED':
      case 'ERR_UNAUTHENTICATED': return new KeyholdError('ERR_PERMISSION_DENIED', `keyhold server refused the plugin's token: ${err.message}`);
      default: return new KeyholdError('ERR_HSM_UNAVAILABLE', `keyhold server error ${err.status} ${err.code}: ${err.message}`);
    }
  }
  return new KeyholdError('ERR_HSM_UNAVAILABLE', `keyhold server: ${(err as Error).message}`);
}
