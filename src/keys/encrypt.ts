import { constants, privateDecrypt, publicEncrypt } from 'node:crypto';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { KeyholdError } from '../errors.js';
import { algorithmOf, requireOperation } from './algorithms.js';
import { aadFor, formatCiphertext, headerFor, parseCiphertext } from './ciphertext.js';
import type { KeysContext } from './context.js';
import type { Material } from './material.js';
import type { KeyRecord } from './types.js';
import { currentVersion, readableVersion } from './versions.js';

/** RSA-OAEP carries at most modulus - 2·hash - 2 bytes. */
function oaepCapacity(record: KeyRecord, hash: 'sha256' | 'sha1'): number {
  const bits = Number(record.type.split('-')[1]);
  return bits / 8 - 2 * (hash === 'sha256' ? 32 : 20) - 2;
}

/** RSA-OAEP parameters of a version; OAEP has no portable label support across tokens, so a context cannot be bound. */
function oaepHashFor(record: KeyRecord, version: number, context: Buffer | undefined): 'sha256' | 'sha1' {
  if (context && context.length > 0) throw new KeyholdError('ERR_BAD_REQUEST', `${record.type} keys do not take a context`);
  return record.versions[String(version)]?.oaepHash ?? 'sha256';
}

async function sealWith(ctx: KeysContext, record: KeyRecord, version: number, material: Material, plaintext: Buffer, context: Buffer | undefined): Promise<Buffer> {
  const family = algorithmOf(record.type).family;
  if (family === 'aes') {
    const aad = aadFor(headerFor(record.name, version), context);
    return material.protection === 'hsm' ? ctx.hsm.aesGcmEncrypt(material.hsmKey, plaintext, aad) : aesGcmSeal(material.secret, plaintext, aad);
  }
  const hash = oaepHashFor(record, version, context);
  if (plaintext.length > oaepCapacity(record, hash)) {
    throw new KeyholdError('ERR_PLAINTEXT_TOO_LARGE', `${record.type} keys encrypt at most ${oaepCapacity(record, hash)} bytes; use an aes256-gcm key or a data key`);
  }
  if (!material.publicKey) throw new KeyholdError('ERR_INTERNAL', `key "${record.name}" has no public key`);
  return material.protection === 'hsm'
    ? ctx.hsm.rsaEncrypt(material.hsmKey, material.publicKey, plaintext, hash)
    : publicEncrypt({ key: material.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
}

async function openWith(ctx: KeysContext, record: KeyRecord, version: number, material: Material, body: Buffer, context: Buffer | undefined): Promise<Buffer> {
  const family = algorithmOf(record.type).family;
  if (family === 'aes') {
    const aad = aadFor(headerFor(record.name, version), context);
    return material.protection === 'hsm' ? ctx.hsm.aesGcmDecrypt(material.hsmKey, body, aad) : aesGcmOpen(material.secret, body, aad);
  }
  const hash = oaepHashFor(record, version, context);
  if (material.protection === 'hsm') return ctx.hsm.rsaDecrypt(material.hsmKey, body, hash);
  try {
    return privateDecrypt({ key: material.secret, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, body);
  } catch (cause) {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', 'ciphertext failed to decrypt', { cause });
  }
}

export interface EncryptResult {
  ciphertext: string;
  version: number;
}

export async function encrypt(ctx: KeysContext, name: string, plaintext: Buffer, context?: Buffer): Promise<EncryptResult> {
  const record = await ctx.records.get(name);
  requireOperation(record.type, 'encrypt');
  const version = currentVersion(record);
  const material = await ctx.material.get(record, version);
  const body = await sealWith(ctx, record, version, material, plaintext, context);
  return { ciphertext: formatCiphertext(record.name, version, body), version };
}

export async function decrypt(ctx: KeysContext, name: string, ciphertext: string, context?: Buffer): Promise<{ plaintext: Buffer; version: number }> {
  const record = await ctx.records.get(name);
  requireOperation(record.type, 'decrypt');
  const parsed = parseCiphertext(ciphertext, record.name);
  const version = readableVersion(record, parsed.version);
  const material = await ctx.material.get(record, version);
  return { plaintext: await openWith(ctx, record, version, material, parsed.body, context), version };
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
