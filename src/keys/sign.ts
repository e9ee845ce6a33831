import { KeyholdError } from '../errors.js';
import { requireOperation } from './algorithms.js';
import { formatCiphertext, parseCiphertext } from './ciphertext.js';
import type { KeysContext } from './context.js';
import { currentVersion, readableVersion } from './versions.js';

/** Signs (ECDSA P1363 / RSA-PSS-SHA256) or MACs (HMAC-SHA256) `input`; the result names key and version. */
export async function sign(ctx: KeysContext, name: string, input: Buffer): Promise<{ signature: string; version: number }> {
  const record = await ctx.records.get(name);
  requireOperation(record.type, 'sign');
  const version = currentVersion(record);
  const material = ctx.material.cached(record, version) ?? await ctx.material.get(record, version);
  return { signature: formatCiphertext(record.name, version, await material.sign(input)), version };
}

export async function verify(ctx: KeysContext, name: string, input: Buffer, signature: string): Promise<{ valid: boolean; version: number }> {
  const record = await ctx.records.get(name);
  requireOperation(record.type, 'verify');
  let parsed;
  try {
    parsed = parseCiphertext(signature, record.name, 'signature');
  } catch (err) {
    throw new KeyholdError('ERR_SIGNATURE_INVALID', (err as Error).message);
  }
  const version = readableVersion(record, parsed.version);
  const material = ctx.material.cached(record, version) ?? await ctx.material.get(record, version);
  return { valid: await material.verify(input, parsed.body), version };
}
