/**
 * Where token records live in the barrier. A token and everything that names it are written in one
 * commit and deleted in one commit (revocation, expiry sweep), so no index ever points at nothing
 * and no token exists that an index cannot find.
 */

/** The token record, by the sha256 of the token. */
export const tokenPath = (id: string): string => `sys/tokens/${id}`;

export const ACCESSOR_INDEX_PREFIX = 'sys/token-accessors/';
/** Accessor → token id: the non-secret handle used to look up and revoke a token. */
export const accessorPath = (accessor: string): string => `${ACCESSOR_INDEX_PREFIX}${accessor}`;

/** `sys/token-children/<parent id>/<child id>`: lists a token's children without scanning every token. */
export const childrenPrefix = (parentId: string): string => `sys/token-children/${parentId}/`;
export const childPath = (parentId: string, childId: string): string => `${childrenPrefix(parentId)}${childId}`;

export const EXPIRY_PREFIX = 'sys/token-expiry/';

/**
 * `sys/token-expiry/<expiry in ms, 15 digits>/<token id>`: written with every expiring token, so
 * storage lists them in expiry order and a sweep reads only what has expired. Its record names
 * every path written with the token (its record, accessor and child index, a pod's revocation
 * index), which go with it.
 */
export const expiryPath = (expiresAtMs: number, id: string): string => `${EXPIRY_PREFIX}${String(expiresAtMs).padStart(15, '0')}/${id}`;

export interface ExpiryRecord {
  paths: string[];
}

export interface AccessorIndexRecord {
  id: string;
}
