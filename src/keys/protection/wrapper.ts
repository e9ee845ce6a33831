import { randomBytes } from 'node:crypto';
import type { Barrier } from '../../barrier/barrier.js';
import type { MaterialWrap } from '../../barrier/seal.js';
import { aesGcmOpen, aesGcmSeal } from '../../crypto/aead.js';
import { zeroize } from '../../crypto/zero.js';
import { KeyholdError } from '../../errors.js';
import type { Hsm, HsmKey } from '../../hsm/types.js';

/**
 * What wraps protection=wrapped material (AES-256-GCM, iv ‖ ciphertext ‖ tag, with the version's
 * AAD). Which one a store uses is fixed by its seal record (`wrap`, barrier/seal.ts).
 */
export interface MaterialWrapper {
  wrap(plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  /** Rejects with ERR_CIPHERTEXT_INVALID when the tag, AAD or layout is wrong. */
  unwrap(blob: Buffer, aad: Buffer): Promise<Buffer>;
  /** Forgets any key bytes held in this process. */
  close(): void;
}

/** On the HSM: every wrap and unwrap is a token call under a non-extractable AES key (stores on tokens with AES-GCM). */
export function hsmMaterialWrapper(hsm: Hsm, key: HsmKey): MaterialWrapper {
  return {
    wrap: (plaintext, aad) => hsm.aesGcmEncrypt(key, plaintext, aad),
    unwrap: (blob, aad) => hsm.aesGcmDecrypt(key, blob, aad),
    close: () => undefined,
  };
}

/**
 * In this process, under a key from the barrier (tokens without AES-GCM): the key is as safe as
 * the barrier root key it is sealed by, which this process holds anyway. Zeroed on close.
 */
export function memoryMaterialWrapper(key: Buffer): MaterialWrapper {
  if (key.length !== 32) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the material wrap key is not 256 bits');
  let held: Buffer | null = key;
  const requireKey = (): Buffer => {
    if (!held) throw new KeyholdError('ERR_SEALED', 'keyhold is sealed');
    return held;
  };
  return {
    wrap: async (plaintext, aad) => aesGcmSeal(requireKey(), plaintext, aad),
    unwrap: async (blob, aad) => aesGcmOpen(requireKey(), blob, aad),
    close() {
      zeroize(held);
      held = null;
    },
  };
}

/** Barrier path of the in-memory wrap key (sealed by the root key like every record, so root rotation rewrites it). */
export const MATERIAL_WRAP_KEY_PATH = 'sys/material-wrap-key';

interface WrapKeyRecord {
  /** 32 random bytes, base64. */
  key: string;
  createdAt: string;
}

/**
 * The wrapper the seal record names. `initializing`: the store is being initialised, so a missing
 * in-memory wrap key is made (once, even with concurrent initialisers); otherwise a missing one is
 * an integrity failure (its wrapped material would be lost, so it is never silently replaced).
 */
export async function openMaterialWrapper(hsm: Hsm, wrap: MaterialWrap, hsmKey: HsmKey | null, barrier: Barrier, initializing: boolean): Promise<MaterialWrapper> {
  if (wrap.mode === 'hsm') {
    if (!hsmKey) throw new KeyholdError('ERR_HSM_KEY_MISSING', `HSM wrap key "${wrap.keyLabel}" not found in token "${hsm.token.label}"`);
    return hsmMaterialWrapper(hsm, hsmKey);
  }
  const record = initializing
    ? await barrier.update<WrapKeyRecord, WrapKeyRecord>(MATERIAL_WRAP_KEY_PATH, (current) => {
      if (current) return { writes: [], result: current };
      const made: WrapKeyRecord = { key: randomBytes(32).toString('base64'), createdAt: new Date().toISOString() };
      return { writes: [{ path: MATERIAL_WRAP_KEY_PATH, value: made }], result: made };
    })
    : await barrier.getJson<WrapKeyRecord>(MATERIAL_WRAP_KEY_PATH);
  if (!record || typeof record.key !== 'string') {
    throw new KeyholdError('ERR_BARRIER_INTEGRITY', `the seal record names an in-memory material wrap key, but the barrier has none at ${MATERIAL_WRAP_KEY_PATH}`);
  }
  return memoryMaterialWrapper(Buffer.from(record.key, 'base64'));
}
