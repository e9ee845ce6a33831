import pkcs11 from 'pkcs11js';
import { KeyholdError } from '../errors.js';
import type { HsmKeyKind } from './types.js';

type Template = import('pkcs11js').Template;

/** DER-encoded named-curve OIDs for CKA_EC_PARAMS. */
const P256_OID = Buffer.from('06082a8648ce3d030107', 'hex');
const P384_OID = Buffer.from('06052b81040022', 'hex');

/**
 * Every usage flag is set explicitly: SoftHSM fills in usages left out (an EC key asked only to
 * sign also got decrypt and unwrap). Private halves are token, private, sensitive and
 * non-extractable; public halves are session objects whose value keyhold keeps outside the token,
 * so every object left in the token is a sensitive, never-extractable secret.
 */
type Usage = 'encrypt' | 'decrypt' | 'sign' | 'verify' | 'wrap' | 'unwrap' | 'derive' | 'signRecover' | 'verifyRecover';
const USAGE_ATTRIBUTE: Record<Usage, number> = {
  encrypt: pkcs11.CKA_ENCRYPT, decrypt: pkcs11.CKA_DECRYPT, sign: pkcs11.CKA_SIGN, verify: pkcs11.CKA_VERIFY,
  wrap: pkcs11.CKA_WRAP, unwrap: pkcs11.CKA_UNWRAP, derive: pkcs11.CKA_DERIVE,
  signRecover: pkcs11.CKA_SIGN_RECOVER, verifyRecover: pkcs11.CKA_VERIFY_RECOVER,
};
/** The usage attributes each object class accepts (a private key rejects CKA_VERIFY, CKA_ENCRYPT, CKA_WRAP). */
const SECRET_USAGES: Usage[] = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'];
const PRIVATE_USAGES: Usage[] = ['decrypt', 'sign', 'signRecover', 'unwrap', 'derive'];
const PUBLIC_USAGES: Usage[] = ['encrypt', 'verify', 'verifyRecover', 'wrap', 'derive'];

function usages(applicable: Usage[], allowed: Usage[]): Template {
  return applicable.map((usage) => ({ type: USAGE_ATTRIBUTE[usage], value: allowed.includes(usage) }));
}

/** What every secret or private key keyhold keeps in the token carries: a token object nobody can read out. */
function protectedKeyBase(objectClass: number, label: string, id: Buffer): Template {
  return [
    { type: pkcs11.CKA_CLASS, value: objectClass },
    { type: pkcs11.CKA_TOKEN, value: true },
    { type: pkcs11.CKA_PRIVATE, value: true },
    { type: pkcs11.CKA_SENSITIVE, value: true },
    { type: pkcs11.CKA_EXTRACTABLE, value: false },
    { type: pkcs11.CKA_MODIFIABLE, value: false },
    { type: pkcs11.CKA_LABEL, value: label },
    { type: pkcs11.CKA_ID, value: id },
  ];
}

const secretKeyBase = (label: string, id: Buffer): Template => protectedKeyBase(pkcs11.CKO_SECRET_KEY, label, id);
const privateKeyBase = (label: string, id: Buffer): Template => protectedKeyBase(pkcs11.CKO_PRIVATE_KEY, label, id);

function publicKeyBase(label: string, id: Buffer): Template {
  return [
    { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_PUBLIC_KEY },
    { type: pkcs11.CKA_TOKEN, value: false },
    { type: pkcs11.CKA_PRIVATE, value: false },
    { type: pkcs11.CKA_LABEL, value: label },
    { type: pkcs11.CKA_ID, value: id },
  ];
}

export interface SymmetricSpec {
  readonly family: 'secret';
  readonly keyType: number;
  readonly genMechanism: number;
  template(label: string, id: Buffer): Template;
}

export interface AsymmetricSpec {
  readonly family: 'ec' | 'rsa';
  readonly keyType: number;
  readonly genMechanism: number;
  /** Node's digest name used before the raw sign mechanism. */
  readonly digest: 'sha256' | 'sha384';
  publicTemplate(label: string, id: Buffer): Template;
  privateTemplate(label: string, id: Buffer): Template;
}

export type KeySpec = SymmetricSpec | AsymmetricSpec;

/** A 256-bit secret key of `keyType`, usable only for `allowed` (one key, one purpose). */
function secretSpec(keyType: number, genMechanism: number, allowed: Usage[]): SymmetricSpec {
  return {
    family: 'secret',
    keyType,
    genMechanism,
    template: (label, id) => [
      ...secretKeyBase(label, id),
      { type: pkcs11.CKA_KEY_TYPE, value: keyType },
      { type: pkcs11.CKA_VALUE_LEN, value: 32 },
      ...usages(SECRET_USAGES, allowed),
    ],
  };
}

function rsaSpec(bits: number): AsymmetricSpec {
  return {
    family: 'rsa',
    keyType: pkcs11.CKK_RSA,
    genMechanism: pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN,
    digest: 'sha256',
    publicTemplate: (label, id) => [
      ...publicKeyBase(label, id),
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_RSA },
      { type: pkcs11.CKA_MODULUS_BITS, value: bits },
      { type: pkcs11.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      ...usages(PUBLIC_USAGES, ['encrypt', 'verify']),
    ],
    privateTemplate: (label, id) => [
      ...privateKeyBase(label, id),
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_RSA },
      ...usages(PRIVATE_USAGES, ['decrypt', 'sign']),
    ],
  };
}

function ecSpec(oid: Buffer, digest: 'sha256' | 'sha384'): AsymmetricSpec {
  return {
    family: 'ec',
    keyType: pkcs11.CKK_EC,
    genMechanism: pkcs11.CKM_EC_KEY_PAIR_GEN,
    digest,
    publicTemplate: (label, id) => [
      ...publicKeyBase(label, id),
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_EC },
      { type: pkcs11.CKA_EC_PARAMS, value: oid },
      ...usages(PUBLIC_USAGES, ['verify']),
    ],
    privateTemplate: (label, id) => [
      ...privateKeyBase(label, id),
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_EC },
      ...usages(PRIVATE_USAGES, ['sign']),
    ],
  };
}

/** One null-prototype entry per key kind; an unknown kind throws. */
const SPECS: Record<HsmKeyKind, KeySpec> = Object.assign(Object.create(null) as Record<HsmKeyKind, KeySpec>, {
  aes256: secretSpec(pkcs11.CKK_AES, pkcs11.CKM_AES_KEY_GEN, ['encrypt', 'decrypt']),
  'hmac-sha256': secretSpec(pkcs11.CKK_GENERIC_SECRET, pkcs11.CKM_GENERIC_SECRET_KEY_GEN, ['sign', 'verify']),
  'ec-p256': ecSpec(P256_OID, 'sha256'),
  'ec-p384': ecSpec(P384_OID, 'sha384'),
  'rsa-2048': rsaSpec(2048),
  'rsa-3072': rsaSpec(3072),
  'rsa-4096': rsaSpec(4096),
} satisfies Record<HsmKeyKind, KeySpec>);

export function keySpec(kind: HsmKeyKind): KeySpec {
  const spec = SPECS[kind];
  if (!spec) throw new KeyholdError('ERR_NOT_SUPPORTED', `unsupported HSM key kind ${String(kind)}`);
  return spec;
}

export function keyClassOf(kind: HsmKeyKind): number {
  return keySpec(kind).family === 'secret' ? pkcs11.CKO_SECRET_KEY : pkcs11.CKO_PRIVATE_KEY;
}

export const OAEP_PARAMS = {
  sha256: { hashAlg: pkcs11.CKM_SHA256, mgf: pkcs11.CKG_MGF1_SHA256 },
  sha1: { hashAlg: pkcs11.CKM_SHA_1, mgf: pkcs11.CKG_MGF1_SHA1 },
} as const;
