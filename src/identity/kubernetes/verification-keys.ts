/**
 * The keys service-account tokens are checked against: the configured PEM keys, or the issuer's
 * JWKS read from kube-apiserver (read again at most every 30 s, and only when a token names a key
 * it does not hold: a key rotated on the cluster).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import { KeyholdError } from '../../errors.js';

const JWKS_REFRESH_MS = 30_000;

/**
 * A PEM public key as a KeyObject: usable with every RS*, PS* and ES* algorithm its type allows
 * (jose's importSPKI binds a key to one algorithm, which refused RS384/PS256/ES384 tokens).
 */
export function publicKeyFromPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new KeyholdError('ERR_BAD_REQUEST', 'public_keys_pem holds something that is not a public key in PEM');
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') throw new KeyholdError('ERR_BAD_REQUEST', 'public_keys_pem keys must be RSA or EC');
  return key;
}

export type KeySet = JWTVerifyGetKey | KeyObject[];

export class VerificationKeys {
  #keys: KeySet | undefined;
  #fetchedAt = 0;

  /** `pems`: fixed keys (never re-read); otherwise `jwks()` reads the issuer's key set. */
  constructor(private readonly source: { pems: readonly string[] } | { jwks(): Promise<unknown> }) {}

  /** Whether the keys can change (a JWKS): only then is a token naming an unknown key worth a second try. */
  get refreshable(): boolean {
    return !('pems' in this.source);
  }

  /** The keys to verify with; `refresh`: a token named a key not held, read the JWKS again if it was not just read. */
  async get(refresh = false): Promise<KeySet> {
    if ('pems' in this.source) {
      this.#keys ??= this.source.pems.map(publicKeyFromPem);
      return this.#keys;
    }
    if (!this.#keys || (refresh && Date.now() - this.#fetchedAt > JWKS_REFRESH_MS)) {
      const jwks = await this.source.jwks();
      this.#keys = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
      this.#fetchedAt = Date.now();
    }
    return this.#keys;
  }
}
