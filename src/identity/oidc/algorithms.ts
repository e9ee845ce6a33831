/**
 * The ID token signing algorithms keyhold accepts: asymmetric only. `none` would accept anything;
 * HS* would make the client secret (which keyhold holds, and which the provider's admins and
 * anyone who reads it can use) a key for minting ID tokens. Null prototype: a name like
 * `constructor` is not in it.
 */
export const ID_TOKEN_ALGORITHMS: Readonly<Record<string, true>> = Object.assign(Object.create(null) as Record<string, true>, {
  RS256: true, RS384: true, RS512: true,
  PS256: true, PS384: true, PS512: true,
  ES256: true, ES384: true, ES512: true,
  EdDSA: true, Ed25519: true,
});

/** The provider's advertised algorithms that keyhold accepts (RS256 when it advertises none: the OIDC default). */
export function acceptedAlgorithms(advertised: readonly unknown[] | undefined): string[] {
  const list = advertised === undefined ? ['RS256'] : advertised;
  return list.filter((a): a is string => typeof a === 'string' && ID_TOKEN_ALGORITHMS[a] === true);
}
