import { constants, createHmac, sign as nodeSign, timingSafeEqual, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import { requireOperation, type KeyAlgorithm } from './algorithms.js';
import { formatCiphertext, parseCiphertext } from './ciphertext.js';
import type { KeysContext } from './context.js';
import type { Material } from './material.js';
import { currentVersion, readableVersion } from './versions.js';

/** Same parameters the HSM adapter uses, so a signature verifies whichever side made it. */
function signOptions(algorithm: KeyAlgorithm, key: KeyObject) {
  return algorithm.family === 'ec'
    ? { key, dsaEncoding: 'ieee-p1363' as const }
    : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
}

async function macOrSign(ctx: KeysContext, algorithm: KeyAlgorithm, material: Material, input: Buffer): Promise<Buffer> {
  if (algorithm.family === 'hmac') {
    return material.protection === 'hsm' ? ctx.hsm.hmacSha256(material.hsmKey, input) : createHmac('sha256', material.secret).update(input).digest();
  }
  if (material.protection === 'hsm') return ctx.hsm.sign(material.hsmKey, input);
  return nodeSign(algorithm.digest ?? 'sha256', input, signOptions(algorithm, material.secret));
}

/** Signs (ECDSA P1363 / RSA-PSS-SHA256) or MACs (HMAC-SHA256) `input`; the result names key and version. */
export async function sign(ctx: KeysContext, name: string, input: Buffer): Promise<{ signature: string; version: number }> {
  const record = await ctx.records.get(name);
  const algorithm = requireOperation(record.type, 'sign');
  const version = currentVersion(record);
  const material = await ctx.material.get(record, version);
  return { signature: formatCiphertext(record.name, version, await macOrSign(ctx, algorithm, material, input)), version };
}

export async function verify(ctx: KeysContext, name: string, input: Buffer, signature: string): Promise<{ valid: boolean; version: number }> {
  const record = await ctx.records.get(name);
  const algorithm = requireOperation(record.type, 'verify');
  let parsed;
  try {
    parsed = parseCiphertext(signature, record.name, 'signature');
  } catch (err) {
    throw new KeyholdError('ERR_SIGNATURE_INVALID', (err as Error).message);
  }
  const version = readableVersion(record, parsed.version);
  const material = await ctx.material.get(record, version);
  if (algorithm.family === 'hmac') {
    const expected = await macOrSign(ctx, algorithm, material, input);
    return { valid: expected.length === parsed.body.length && timingSafeEqual(expected, parsed.body), version };
  }
  // Verification needs only the public half: done locally for both protections.
  if (!material.publicKey) throw new KeyholdError('ERR_INTERNAL', `key "${name}" has no public key`);
  return { valid: nodeVerify(algorithm.digest ?? 'sha256', input, signOptions(algorithm, material.publicKey), parsed.body), version };
}
