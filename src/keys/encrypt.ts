import type { KeyAlgorithm } from './algorithms.js';
import { requireOperation } from './algorithms.js';
import { aadFor, formatCiphertext, headerFor, parseCiphertext } from './ciphertext.js';
import type { KeysContext } from './context.js';
import type { KeyRecord } from './types.js';
import { currentVersion, readableVersion } from './versions.js';

const NO_CONTEXT = Buffer.alloc(0);

/**
 * AES-GCM authenticates key name, version and context together. RSA-OAEP is handed the context
 * alone, which it refuses unless empty (key-material.ts).
 */
function aadOf(record: KeyRecord, algorithm: KeyAlgorithm, version: number, context: Buffer | undefined): Buffer {
  return algorithm.takesContext ? aadFor(headerFor(record.name, version), context) : context ?? NO_CONTEXT;
}

export interface EncryptResult {
  ciphertext: string;
  version: number;
}

export async function encrypt(ctx: KeysContext, name: string, plaintext: Buffer, context?: Buffer): Promise<EncryptResult> {
  const record = await ctx.records.get(name);
  const algorithm = requireOperation(record.type, 'encrypt');
  const version = currentVersion(record);
  const material = ctx.material.cached(record, version) ?? await ctx.material.get(record, version);
  const body = await material.seal(plaintext, aadOf(record, algorithm, version, context));
  return { ciphertext: formatCiphertext(record.name, version, body), version };
}

export async function decrypt(ctx: KeysContext, name: string, ciphertext: string, context?: Buffer): Promise<{ plaintext: Buffer; version: number }> {
  const record = await ctx.records.get(name);
  const algorithm = requireOperation(record.type, 'decrypt');
  const parsed = parseCiphertext(ciphertext, record.name);
  const version = readableVersion(record, parsed.version);
  const material = ctx.material.cached(record, version) ?? await ctx.material.get(record, version);
  return { plaintext: await material.open(parsed.body, aadOf(record, algorithm, version, context)), version };
}

/** Decrypts with whatever version the ciphertext names and encrypts under the latest: the plaintext never leaves the server. */
export async function rewrap(ctx: KeysContext, name: string, ciphertext: string, context?: Buffer): Promise<EncryptResult> {
  const { plaintext } = await decrypt(ctx, name, ciphertext, context);
  try {
    return await encrypt(ctx, name, plaintext, context);
  } finally {
    plaintext.fill(0);
  }
}
