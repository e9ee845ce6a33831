/**
 * Direct mode: the root key is a set of non-extractable AES-256 keys in the HSM labelled
 * `<key label>/v<N>`. Rotation adds v<N+1> (from any process sharing the token: the running plugin
 * finds it on its next look-up); retiring destroys an old version once nothing needs it.
 */
import type { Hsm, HsmKey } from '../../hsm/types.js';
import { KeyholdError, isKeyholdError } from '../../errors.js';
import { deriveKeyId } from './key-id.js';
import { KEK_WRAP_CONTEXT, type RootKey, type RootKeyHealth, type RootKeyVersion } from './root-key.js';

interface KnownVersion extends RootKeyVersion {
  key: HsmKey;
}

const VERSION_SUFFIX = /\/v([1-9]\d{0,8})$/;

export interface DirectRootKeyOptions {
  /** How long a look-up of the token's versions is reused (ms). */
  refreshMs?: number;
}

/** The versions of `label` in the token, oldest first. */
export function listVersions(hsm: Hsm, label: string): Array<{ version: number; key: HsmKey }> {
  return hsm.listKeys(`${label}/v`, 'aes256')
    .map((key) => ({ key, match: VERSION_SUFFIX.exec(key.label) }))
    .filter((v): v is { key: HsmKey; match: RegExpExecArray } => v.match !== null && v.key.label === `${label}/v${v.match[1]}`)
    .map(({ key, match }) => ({ version: Number(match[1]), key }))
    .sort((a, b) => a.version - b.version);
}

function keyIdOf(hsm: Hsm, label: string, version: number, key: HsmKey): string {
  const t = hsm.token;
  return deriveKeyId(['pkcs11', t.manufacturer, t.model, t.serial, t.label, label, String(version), hsm.objectId(key).toString('hex')]);
}

/** Every version in the token with its key_id, oldest first. */
export function describeVersions(hsm: Hsm, label: string): KnownVersion[] {
  return listVersions(hsm, label).map(({ version, key }) => ({ version, key, keyId: keyIdOf(hsm, label, version, key) }));
}

/** Adds version N+1 (the running plugins pick it up at their next Status). */
export async function rotateDirectRootKey(hsm: Hsm, label: string): Promise<{ version: number; key_id: string }> {
  const newest = listVersions(hsm, label).at(-1)?.version ?? 0;
  const key = await hsm.generateKey(`${label}/v${newest + 1}`, 'aes256');
  return { version: newest + 1, key_id: keyIdOf(hsm, label, newest + 1, key) };
}

/**
 * Destroys an old version. Only after every object encrypted under it was re-encrypted: what is
 * still wrapped under it can no longer be read. The newest version cannot be retired.
 */
export async function retireDirectRootKey(hsm: Hsm, label: string, version: number): Promise<{ retired: number; key_id: string }> {
  const versions = listVersions(hsm, label);
  const target = versions.find((v) => v.version === version);
  if (!target) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `HSM key "${label}" has no version ${version}`);
  if (target === versions.at(-1)) throw new KeyholdError('ERR_CONFLICT', `version ${version} is the newest version of "${label}"; rotate first`);
  const keyId = keyIdOf(hsm, label, version, target.key);
  await hsm.destroyKey(target.key);
  return { retired: version, key_id: keyId };
}

export class DirectRootKey implements RootKey {
  readonly description: string;
  readonly reopenWhenLost = true;
  #byKeyId = new Map<string, KnownVersion>();
  #newest: KnownVersion | undefined;
  #refreshedAt = 0;
  #calls = 0;

  private constructor(private readonly hsm: Hsm, private readonly label: string, private readonly refreshMs: number) {
    this.description = `HSM token "${hsm.token.label}" (serial ${hsm.token.serial}), key "${label}"`;
  }

  /** Opens the root key, generating version 1 in the token if the label has no version yet. */
  static async open(hsm: Hsm, label: string, options: DirectRootKeyOptions = {}): Promise<DirectRootKey> {
    const root = new DirectRootKey(hsm, label, options.refreshMs ?? 5000);
    root.#refresh();
    if (!root.#newest) {
      try {
        await hsm.generateKey(`${label}/v1`, 'aes256');
      } catch (err) {
        // Another plugin on the same token made it first: fine.
        if (!isKeyholdError(err, 'ERR_CONFLICT')) throw err;
      }
      root.#refresh();
    }
    return root;
  }

  get calls(): number {
    return this.#calls;
  }

  #refresh(): void {
    const versions = describeVersions(this.hsm, this.label);
    this.#byKeyId = new Map(versions.map((v) => [v.keyId, v]));
    this.#newest = versions.at(-1);
    this.#refreshedAt = Date.now();
  }

  async latest(force = false): Promise<RootKeyVersion> {
    if (force || Date.now() - this.#refreshedAt >= this.refreshMs) this.#refresh();
    if (!this.#newest) throw new KeyholdError('ERR_HSM_KEY_MISSING', `no version of HSM key "${this.label}" is left in the token`);
    return { version: this.#newest.version, keyId: this.#newest.keyId };
  }

  assertUsable(keyId: string): void {
    if (!this.#byKeyId.has(keyId)) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', 'unknown key_id: its root-key version has been retired (or was never in this token)');
  }

  async wrap(kek: Buffer): Promise<{ wrapped: Buffer; keyId: string }> {
    await this.latest();
    const newest = this.#newest as KnownVersion;
    this.#calls++;
    return { wrapped: await this.hsm.aesGcmEncrypt(newest.key, kek, KEK_WRAP_CONTEXT), keyId: newest.keyId };
  }

  async unwrap(keyId: string, wrapped: Buffer): Promise<Buffer> {
    let known = this.#byKeyId.get(keyId);
    if (!known) {
      // Perhaps another instance rotated since our last look-up.
      this.#refresh();
      known = this.#byKeyId.get(keyId);
    }
    if (!known) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', 'unknown key_id: no version of the root key in this HSM token has it (retired, or another key)');
    this.#calls++;
    try {
      return await this.hsm.aesGcmDecrypt(known.key, wrapped, KEK_WRAP_CONTEXT);
    } catch (err) {
      if (isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'the wrapped KEK in the annotation failed authentication under its key_id');
      throw err;
    }
  }

  async health(): Promise<RootKeyHealth> {
    const probe = await this.hsm.health();
    if (!probe.ok) return { ok: false, error: `HSM does not answer: ${probe.error ?? 'unknown error'}` };
    if (!this.#newest) return { ok: false, error: `no version of HSM key "${this.label}" is left in the token` };
    return { ok: true };
  }

  async close(): Promise<void> {
    await this.hsm.close();
  }
}
