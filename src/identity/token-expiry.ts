/**
 * When a new token expires. Pure, so the clamping rules are unit-tested without a server.
 */

/** The server-wide maximum token lifetime when the config sets none: Vault's default, 768 h (32 days). */
export const DEFAULT_MAX_TTL_SECONDS = 768 * 3600;

/**
 * The expiry (ms since the epoch) of a token created at `nowMs`: the requested TTL (the server
 * maximum when none is asked for), never beyond `now + maxTtlSeconds`, and never beyond the
 * parent's expiry, so a child can never outlive its parent. A parent without an expiry (the root
 * token made at initialisation) does not limit it; the server maximum still does.
 */
export function tokenExpiresAt(nowMs: number, requestedTtlSeconds: number | undefined, maxTtlSeconds: number, parentExpiresAtMs?: number): number {
  const ttl = requestedTtlSeconds === undefined ? maxTtlSeconds : Math.min(requestedTtlSeconds, maxTtlSeconds);
  const at = nowMs + ttl * 1000;
  return parentExpiresAtMs === undefined ? at : Math.min(at, parentExpiresAtMs);
}
