import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

// Off the event loop: an RSA-4096 generation takes seconds, and every other request would wait.
const generatePair = promisify(generateKeyPair);
import { KeyholdError } from '../errors.js';
import type { HsmKeyKind } from '../hsm/types.js';
import type { KeyType } from './types.js';

export type KeyOperation = 'encrypt' | 'decrypt' | 'datakey' | 'sign' | 'verify';

export interface KeyAlgorithm {
  readonly hsmKind: HsmKeyKind;
  readonly family: 'aes' | 'hmac' | 'ec' | 'rsa';
  readonly operations: ReadonlySet<KeyOperation>;
  /** Digest for signatures (Node name) and the signature encoding keyhold returns. */
  readonly digest?: 'sha256' | 'sha384';
  /**
   * Encryption binds the ciphertext header and the caller's context as AAD (AES-GCM). RSA-OAEP
   * binds nothing: OAEP labels are not supported portably across tokens, so a context is refused.
   */
  readonly takesContext: boolean;
  /** RSA keys: the modulus size, which bounds what one OAEP encryption carries. */
  readonly modulusBits?: number;
  /** Fresh material for protection=wrapped: a raw secret or PKCS#8 DER private key plus SPKI DER public key. */
  generate(): Promise<{ secret: Buffer; publicKeySpki?: Buffer }>;
}

const symmetric = async (): Promise<{ secret: Buffer }> => ({ secret: randomBytes(32) });
const ec = (namedCurve: string) => async () => {
  const { privateKey, publicKey } = await generatePair('ec', { namedCurve });
  return { secret: privateKey.export({ type: 'pkcs8', format: 'der' }), publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }) };
};
const rsa = (modulusLength: number) => async () => {
  const { privateKey, publicKey } = await generatePair('rsa', { modulusLength, publicExponent: 65537 });
  return { secret: privateKey.export({ type: 'pkcs8', format: 'der' }), publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }) };
};

const ENCRYPTING = new Set<KeyOperation>(['encrypt', 'decrypt', 'datakey']);
const SIGNING = new Set<KeyOperation>(['sign', 'verify']);
const RSA_OPS = new Set<KeyOperation>(['encrypt', 'decrypt', 'sign', 'verify']);

/** One null-prototype entry per key type; an unknown type throws. */
const ALGORITHMS: Record<KeyType, KeyAlgorithm> = Object.assign(Object.create(null) as Record<KeyType, KeyAlgorithm>, {
  'aes256-gcm': { hsmKind: 'aes256', family: 'aes', operations: ENCRYPTING, takesContext: true, generate: symmetric },
  'hmac-sha256': { hsmKind: 'hmac-sha256', family: 'hmac', operations: SIGNING, takesContext: false, generate: symmetric },
  'ec-p256': { hsmKind: 'ec-p256', family: 'ec', operations: SIGNING, digest: 'sha256', takesContext: false, generate: ec('P-256') },
  'ec-p384': { hsmKind: 'ec-p384', family: 'ec', operations: SIGNING, digest: 'sha384', takesContext: false, generate: ec('P-384') },
  'rsa-2048': { hsmKind: 'rsa-2048', family: 'rsa', operations: RSA_OPS, digest: 'sha256', takesContext: false, modulusBits: 2048, generate: rsa(2048) },
  'rsa-3072': { hsmKind: 'rsa-3072', family: 'rsa', operations: RSA_OPS, digest: 'sha256', takesContext: false, modulusBits: 3072, generate: rsa(3072) },
  'rsa-4096': { hsmKind: 'rsa-4096', family: 'rsa', operations: RSA_OPS, digest: 'sha256', takesContext: false, modulusBits: 4096, generate: rsa(4096) },
} satisfies Record<KeyType, KeyAlgorithm>);

export function algorithmOf(type: KeyType): KeyAlgorithm {
  const algorithm = ALGORITHMS[type];
  if (!algorithm) throw new KeyholdError('ERR_NOT_SUPPORTED', `unknown key type ${String(type)}`);
  return algorithm;
}

export function requireOperation(type: KeyType, operation: KeyOperation): KeyAlgorithm {
  const algorithm = algorithmOf(type);
  if (!algorithm.operations.has(operation)) {
    throw new KeyholdError('ERR_KEY_OPERATION_UNSUPPORTED', `${type} keys do not support ${operation}`);
  }
  return algorithm;
}
