// TEMPORARY STUB (untracked): the accounts helper's person.ts replaces this at merge.
import type { TokenRecord } from './tokens.js';
export function personOf(token: TokenRecord): string | null {
  return token.selectors?.find((s) => s.startsWith('operator:')) ?? token.selectors?.find((s) => s.startsWith('oidc:')) ?? null;
}
