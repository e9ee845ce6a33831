import { randomBytes } from 'node:crypto';
import { requireOperation } from './algorithms.js';
import type { KeysContext } from './context.js';
import { encrypt } from './encrypt.js';

export interface DataKey {
  ciphertext: string;
  version: number;
  /** Present unless the caller asked for the wrapped form only. The caller must zero it after use. */
  plaintext?: Buffer;
}

/** A fresh random data key for envelope encryption, returned wrapped under the named key (and in clear if asked). */
export async function generateDataKey(ctx: KeysContext, name: string, options: { bits: 128 | 256; includePlaintext: boolean; context?: Buffer }): Promise<DataKey> {
  const record = await ctx.records.get(name);
  requireOperation(record.type, 'datakey');
  const dataKey = randomBytes(options.bits / 8);
  try {
    const wrapped = await encrypt(ctx, name, dataKey, options.context);
    if (!options.includePlaintext) return wrapped;
    return { ...wrapped, plaintext: Buffer.from(dataKey) };
  } finally {
    dataKey.fill(0);
  }
}
