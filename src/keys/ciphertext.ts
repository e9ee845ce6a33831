import { KeyholdError } from '../errors.js';
import { decodeBase64 } from '../crypto/encoding.js';

/**
 * Self-describing ciphertexts and signatures: `keyhold:<key name>:v<version>:<base64>`. The
 * header is also the AAD of AES-GCM, so editing the name or version fails authentication.
 */
export interface ParsedCiphertext {
  name: string;
  version: number;
  header: string;
  body: Buffer;
}

const FORMAT = /^keyhold:([A-Za-z0-9][A-Za-z0-9._-]{0,127}):v([1-9][0-9]{0,8}):([A-Za-z0-9+/=]*)$/;

export function headerFor(name: string, version: number): string {
  return `keyhold:${name}:v${version}`;
}

export function formatCiphertext(name: string, version: number, body: Buffer): string {
  return `${headerFor(name, version)}:${body.toString('base64')}`;
}

export function parseCiphertext(value: string, expectedName: string, what = 'ciphertext'): ParsedCiphertext {
  const match = FORMAT.exec(value);
  if (!match) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `${what} is not in the form keyhold:<key>:v<version>:<base64>`);
  const [, name, version, body] = match as unknown as [string, string, string, string];
  if (name !== expectedName) throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `${what} belongs to key "${name}", not "${expectedName}"`);
  let bytes: Buffer;
  try {
    bytes = decodeBase64(body, what);
  } catch {
    throw new KeyholdError('ERR_CIPHERTEXT_INVALID', `${what} body is not valid base64`);
  }
  return { name, version: Number(version), header: headerFor(name, Number(version)), body: bytes };
}

/** AAD = header ‖ 0x00 ‖ caller context: binds key, version and context together. One allocation: it is built per request. */
export function aadFor(header: string, context: Buffer | undefined): Buffer {
  const headerBytes = Buffer.byteLength(header, 'utf8');
  const aad = Buffer.allocUnsafe(headerBytes + 1 + (context?.length ?? 0));
  aad.write(header, 0, 'utf8');
  aad[headerBytes] = 0;
  context?.copy(aad, headerBytes + 1);
  return aad;
}
