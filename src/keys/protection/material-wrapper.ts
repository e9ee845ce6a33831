/**
 * Who wraps protection=wrapped key material. `hsm`: an AES key in the token (the default; the
 * material is lost with the token). `memory`: a random AES-256 key kept inside the barrier
 * (`sys/seal/wrap-key`) and used in this process, so wrapped keys survive the loss of the token
 * once the root key is recovered (stores with recovery shares use it). Both use AES-256-GCM with
 * the same AAD (materialAad), so the scheme does not know which one it has.
 */
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { BarrierView } from '../../barrier/view.js';
import { aesGcmOpen, aesGcmSeal } from '../../crypto/aead.js';
import { zeroize } from '../../crypto/zero.js';
import { KeyholdError } from '../../errors.js';
import type { Hsm, HsmKey } from '../../hsm/types.js';

export interface MaterialWrapper {
  readonly mode: 'hsm' | 'memory';
  wrap(secret: Buffer, aad: Buffer): Promise<Buffer>;
  unwrap(wrapped: Buffer, aad: Buffer): Promise<Buffer>;
}

export function hsmWrapper(hsm: Hsm, wrapKey: HsmKey): MaterialWrapper {
  return {
    mode: 'hsm',
    wrap: (secret, aad) => hsm.aesGcmEncrypt(wrapKey, secret, aad),
    unwrap: (wrapped, aad) => hsm.aesGcmDecrypt(wrapKey, wrapped, aad),
  };
}

/** The barrier record of the in-memory wrap key, in the seal view (MOUNTS.seal). */
export const WRAP_KEY_KEY = 'wrap-key';
interface WrapKeyRecord {
  /** AES-256 key, base64. */
  key: string;
  createdAt: string;
}

export function memoryWrapper(key: KeyObject): MaterialWrapper {
  return {
    mode: 'memory',
    wrap: async (secret, aad) => aesGcmSeal(key, secret, aad),
    unwrap: async (wrapped, aad) => aesGcmOpen(key, wrapped, aad),
  };
}

/**
 * The in-memory wrapper of a store sealed with `wrap: {mode: 'memory'}`. Only initialisation
 * (`create`) makes the key: later, a missing record means it was removed from storage, and a new
 * key would only hide that every wrapped key is gone.
 */
export async function openMemoryWrapper(view: BarrierView, create: boolean): Promise<MaterialWrapper> {
  let record = await view.get<WrapKeyRecord>(WRAP_KEY_KEY);
  if (!record) {
    if (!create) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the seal names an in-memory wrap key, but the barrier holds none (removed from storage?)');
    const fresh = randomBytes(32);
    record = { key: fresh.toString('base64'), createdAt: new Date().toISOString() };
    zeroize(fresh);
    const read = await view.read<WrapKeyRecord>(WRAP_KEY_KEY);
    // Conditional on absence: two initialising processes must not each make a key.
    if (read.value || !(await view.commit([read], [view.write(WRAP_KEY_KEY, record)]))) return openMemoryWrapper(view, false);
  }
  const raw = Buffer.from(record.key, 'base64');
  try {
    if (raw.length !== 32) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the in-memory wrap key record has the wrong length');
    return memoryWrapper(createSecretKey(raw));
  } finally {
    zeroize(raw);
  }
}
