/**
 * Where token records live: four views (src/barrier/mounts.ts), keys relative to each. A token and
 * everything that names it are written in one commit and deleted in one commit (revocation,
 * expiry sweep), so no index ever points at nothing and no token exists that an index cannot find.
 */
import type { Barrier } from '../barrier/barrier.js';
import { MOUNTS } from '../barrier/mounts.js';
import type { BarrierView, ViewWrite } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';

/** The token store's views of `barrier`, plus the views whose entries die with their token (a pod's, an operator's tokens). */
export function tokenViews(barrier: Pick<Barrier, 'view'>): TokenViews {
  return { tokens: barrier.view(MOUNTS.tokens), accessors: barrier.view(MOUNTS.tokenAccessors), children: barrier.view(MOUNTS.tokenChildren), expiry: barrier.view(MOUNTS.tokenExpiry), owned: [barrier.view(MOUNTS.podTokens), barrier.view(MOUNTS.operatorTokens)] };
}

export interface TokenViews {
  /** `<token id>` (the sha256 of the token) → the token record. */
  tokens: BarrierView;
  /** `<accessor>` → AccessorIndexRecord: the non-secret handle used to look up and revoke a token. */
  accessors: BarrierView;
  /** `<parent id>/<child id>`: lists a token's children without scanning every token. */
  children: BarrierView;
  /**
   * `<expiry in ms, 15 digits>/<token id>` → ExpiryRecord: written with every expiring token, so
   * storage lists them in expiry order and a sweep reads only what has expired.
   */
  expiry: BarrierView;
  /** Views of records another domain writes with a token (a pod's index): deleted with the token. */
  owned: readonly BarrierView[];
}

export const childrenPrefix = (parentId: string): string => `${parentId}/`;
export const childKey = (parentId: string, childId: string): string => `${parentId}/${childId}`;
export const expiryKey = (expiresAtMs: number, id: string): string => `${String(expiresAtMs).padStart(15, '0')}/${id}`;

/**
 * Its record names the full logical path of every record written with the token (its record,
 * accessor and child index, a pod's revocation index), which go with it.
 */
export interface ExpiryRecord {
  paths: string[];
}

export interface AccessorIndexRecord {
  id: string;
}

/**
 * The deletion of a record an expiry record names, through the token store's views: only a path
 * inside one of them (they are the only paths a token is ever written with).
 */
export function removeOwned(views: TokenViews, path: string): ViewWrite {
  for (const view of [views.tokens, views.accessors, views.children, views.expiry, ...views.owned]) {
    const key = view.own(path);
    if (key !== undefined) return view.remove(key);
  }
  throw new KeyholdError('ERR_INTERNAL', `a token names record ${path}, which is outside the token store's views`);
}
