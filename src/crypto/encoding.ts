import { KeyholdError } from '../errors.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict standard base64: Node's decoder silently skips invalid characters, which would turn a
 * typo into different bytes. `field` names the offending request field in the error.
 */
export function decodeBase64(value: string, field: string): Buffer {
  if (!BASE64.test(value)) throw new KeyholdError('ERR_BAD_REQUEST', `${field} is not valid base64`, { details: { field } });
  const bytes = Buffer.from(value, 'base64');
  // One spelling per byte string: "QR==" and "QQ==" must not both decode to "A" (ciphertext malleability).
  if (bytes.toString('base64') !== value) throw new KeyholdError('ERR_BAD_REQUEST', `${field} is not canonical base64 (non-zero padding bits)`, { details: { field } });
  return bytes;
}
