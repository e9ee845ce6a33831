import { createPublicKey, type KeyObject } from 'node:crypto';

/** CKA_EC_POINT is a DER OCTET STRING around the uncompressed point 04‖X‖Y (some tokens omit the wrapper). */
function unwrapEcPoint(der: Buffer): Buffer {
  if (der[0] !== 0x04) throw new Error('unexpected CKA_EC_POINT encoding');
  let offset = 2;
  let length = der[1] ?? 0;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let i = 0; i < n; i++) length = (length << 8) | (der[2 + i] ?? 0);
    offset = 2 + n;
  }
  // A raw point also starts with 0x04; it is wrapped only if the DER length covers the rest exactly.
  return offset + length === der.length ? der.subarray(offset) : der;
}

export function ecPublicKey(curve: 'P-256' | 'P-384', ecPointDer: Buffer): KeyObject {
  const point = unwrapEcPoint(ecPointDer);
  const size = (point.length - 1) / 2;
  return createPublicKey({
    format: 'jwk',
    key: {
      kty: 'EC',
      crv: curve,
      x: point.subarray(1, 1 + size).toString('base64url'),
      y: point.subarray(1 + size).toString('base64url'),
    },
  });
}

export function rsaPublicKey(modulus: Buffer, exponent: Buffer): KeyObject {
  return createPublicKey({
    format: 'jwk',
    key: { kty: 'RSA', n: modulus.toString('base64url'), e: exponent.toString('base64url') },
  });
}
