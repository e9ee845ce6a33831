/**
 * The person behind a token, if any: `operator:<name>` for an operator account's login,
 * `oidc:<sub>` for an SSO login. Tokens of machines (the root token, pod logins) have none. A
 * child token made with `POST /v1/tokens` inherits its parent's selectors, and so its person: the
 * person stays answerable for the tokens they make (quorum approval counts one person once,
 * whatever tokens they hold).
 */
import type { TokenRecord } from './tokens.js';

export const OPERATOR_SELECTOR_PREFIX = 'operator:';
/** An operator account's name: lower case only, so `Alice` and `alice` cannot be two accounts (or one person's two selectors). */
export const OPERATOR_NAME_PATTERN = /^[a-z][a-z0-9._-]{1,62}$/;
export const OIDC_SELECTOR_PREFIX = 'oidc:';

/**
 * The token's person selector, or null. When a token names both (an SSO subject linked to an
 * operator account), the operator is the person: one human, one name, whichever way they logged in.
 */
export function personOf(token: Pick<TokenRecord, 'selectors'>): string | null {
  const selectors = token.selectors;
  if (!selectors) return null;
  let oidc: string | null = null;
  for (const s of selectors) {
    if (s.startsWith(OPERATOR_SELECTOR_PREFIX) && s.length > OPERATOR_SELECTOR_PREFIX.length) return s;
    if (oidc === null && s.startsWith(OIDC_SELECTOR_PREFIX) && s.length > OIDC_SELECTOR_PREFIX.length) oidc = s;
  }
  return oidc;
}

/** The operator name of a token's person, or null (not a person, or an SSO subject not linked to an account). */
export function operatorOf(token: Pick<TokenRecord, 'selectors'>): string | null {
  const person = personOf(token);
  return person?.startsWith(OPERATOR_SELECTOR_PREFIX) ? person.slice(OPERATOR_SELECTOR_PREFIX.length) : null;
}
