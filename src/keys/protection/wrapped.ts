import { zeroize } from '../../crypto/zero.js';
import { KeyholdError } from '../../errors.js';
import { algorithmOf } from '../algorithms.js';
import { InMemoryKeyMaterial } from '../in-memory-material.js';
import { factsOf } from '../key-material.js';
import type { KeyVersionRecord } from '../types.js';
import type { ProtectionScheme } from './scheme.js';

/** The AAD of a version's wrapped material: binds it to its key id and version, so records cannot swap it. */
export function materialAad(keyId: string, version: number): Buffer {
  return Buffer.from(`keyhold/key-material/v1\0${keyId}\0${version}`, 'utf8');
}

/**
 * protection=wrapped: material generated in this process, kept in the barrier AES-GCM-wrapped by
 * the store's material wrapper (the HSM wrap key, or an in-memory key on tokens without AES-GCM), and unwrapped into memory (InMemoryKeyMaterial) when a version is loaded.
 */
export const wrappedProtection: ProtectionScheme = {
  async prepare(custody, record) {
    const algorithm = algorithmOf(record.type);
    const createdAt = new Date().toISOString();
    // Kept until `release` so it can be wrapped for the version it is finally committed as.
    const { secret, publicKeySpki } = await algorithm.generate();
    return {
      boundToVersion: true,
      async entryFor(v) {
        const wrapped = await custody.wrapper.wrap(secret, materialAad(record.id, v));
        const entry: KeyVersionRecord = { version: v, createdAt, wrappedMaterial: wrapped.toString('base64') };
        if (publicKeySpki) entry.publicKeySpki = publicKeySpki.toString('base64');
        // Node's own RSA-OAEP takes SHA-256.
        if (algorithm.family === 'rsa') entry.oaepHash = 'sha256';
        return entry;
      },
      release: () => zeroize(secret),
    };
  },

  async load(custody, record, version) {
    if (!version.wrappedMaterial) throw new KeyholdError('ERR_INTERNAL', `key "${record.name}" version ${version.version} has no material`);
    const raw = await custody.wrapper.unwrap(Buffer.from(version.wrappedMaterial, 'base64'), materialAad(record.id, version.version));
    return InMemoryKeyMaterial.fromRaw(factsOf(record, version), raw);
  },

  /** Nothing outside the record: the wrapped material goes with it. */
  async destroy() {},
};
