import { hash, randomBytes } from 'node:crypto';
import type { Barrier, BarrierWrite } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';

export const TOKEN_PREFIX = 'khs.';
const MAX_CACHED = 10_000;

export interface TokenRecord {
  /** sha256 of the token: the token itself is never stored. Also the audit handle (HMAC'd there). */
  id: string;
  policies: string[];
  createdAt: string;
  /** ISO time; absent for tokens that do not expire (the root token). */
  expiresAt?: string;
  displayName?: string;
  /** Token id of the creator, for revocation trees and audit. */
  parent?: string;
  /** Who the holder proved to be at login (e.g. `k8s:ns:app`), shown in audit records. */
  selectors?: string[];
}

export function tokenId(token: string): string {
  // One-shot hash: about a third cheaper than createHash().update().digest(), and it runs per request.
  return hash('sha256', token, 'hex');
}

function isExpired(record: TokenRecord): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= Date.now();
}

function tokenPath(id: string): string {
  return `sys/tokens/${id}`;
}

const EXPIRY_PREFIX = 'sys/token-expiry/';

/**
 * `sys/token-expiry/<expiry in ms, 15 digits>/<token id>`: written with every expiring token, so
 * storage lists them in expiry order and a sweep reads only what has expired. Its record names
 * every path written with the token (e.g. a pod's revocation index), which go with it.
 */
function expiryPath(expiresAtMs: number, id: string): string {
  return `${EXPIRY_PREFIX}${String(expiresAtMs).padStart(15, '0')}/${id}`;
}

interface ExpiryRecord {
  paths: string[];
}

/**
 * Bearer tokens: 256 random bits, stored only as their hash with TTL and policies. Look-ups are
 * cached in memory (invalidated on revoke) because every request needs one.
 */
export class TokenStore {
  private readonly cache = new Map<string, TokenRecord>();
  /** Bumped by every revoke: a look-up that started before it must not cache what it read. */
  private generation = 0;

  constructor(private readonly barrier: Barrier) {}

  /**
   * `alsoWrite(record)` adds records written in the same atomic commit (e.g. a revocation index
   * that must exist whenever the token does).
   */
  async create(
    input: { policies: string[]; ttlSeconds?: number; displayName?: string; parent?: string; selectors?: string[] },
    alsoWrite?: (record: TokenRecord) => BarrierWrite[],
  ): Promise<{ token: string; record: TokenRecord }> {
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const now = Date.now();
    const record: TokenRecord = {
      id: tokenId(token),
      policies: [...new Set(input.policies)].sort(),
      createdAt: new Date(now).toISOString(),
      ...(input.ttlSeconds ? { expiresAt: new Date(now + input.ttlSeconds * 1000).toISOString() } : {}),
      ...(input.displayName ? { displayName: input.displayName } : {}),
      ...(input.parent ? { parent: input.parent } : {}),
      ...(input.selectors ? { selectors: [...input.selectors] } : {}),
    };
    const writes: BarrierWrite[] = [{ path: tokenPath(record.id), value: record }, ...(alsoWrite?.(record) ?? [])];
    if (input.ttlSeconds) {
      const expiry: ExpiryRecord = { paths: writes.map((w) => w.path) };
      writes.push({ path: expiryPath(now + input.ttlSeconds * 1000, record.id), value: expiry });
    }
    // Fresh random paths: no concurrent writer can have touched them, so the commit cannot lose a race.
    if (!(await this.barrier.commit([], writes))) throw new KeyholdError('ERR_CONFLICT', 'token commit raced; retry');
    return { token, record };
  }

  /**
   * Deletes up to `limit` expired tokens and what was written with them, oldest first; returns how
   * many. Without it every login (a sidecar logs in again at each refresh) would leave a record
   * behind for ever. An expired token is already refused by `lookup`; this only reclaims space.
   */
  async sweepExpired(now = Date.now(), limit = 1000): Promise<number> {
    const due: Array<{ path: string; id: string }> = [];
    for (const path of await this.barrier.list(EXPIRY_PREFIX)) {
      if (due.length >= limit) break;
      const [at, id] = path.slice(EXPIRY_PREFIX.length).split('/') as [string, string];
      if (Number(at) > now) break; // listed in expiry order: the rest are still live
      due.push({ path, id });
    }
    if (due.length === 0) return 0;
    const expiries = await Promise.all(due.map((d) => this.barrier.getJson<ExpiryRecord>(d.path)));
    // One commit (one fsync) for the whole sweep, not one per token.
    const paths = due.flatMap((d, i) => [...(expiries[i]?.paths ?? [tokenPath(d.id)]), d.path]);
    await this.barrier.commit([], paths.map((p) => ({ path: p, delete: true as const })));
    for (const d of due) this.cache.delete(d.id);
    return due.length;
  }

  /**
   * The cached record of a live token, synchronously, or undefined when it must be read from
   * storage (`lookup`). Every request needs one, and an await costs more than the look-up.
   */
  cached(token: string): TokenRecord | undefined {
    const record = this.cache.get(tokenId(token));
    return record && !isExpired(record) ? record : undefined;
  }

  /** The record of a live token; ERR_UNAUTHENTICATED for unknown, malformed or expired tokens. */
  async lookup(token: string): Promise<TokenRecord> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) throw new KeyholdError('ERR_UNAUTHENTICATED', 'invalid token');
    const id = tokenId(token);
    let record = this.cache.get(id);
    if (!record) {
      const generation = this.generation;
      record = (await this.barrier.getJson<TokenRecord>(tokenPath(id))) ?? undefined;
      if (!record) throw new KeyholdError('ERR_UNAUTHENTICATED', 'invalid token');
      // A revoke may have run while we read: then what we read is stale and must not be cached or used.
      if (generation !== this.generation) return this.lookup(token);
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      this.cache.set(id, record);
    }
    if (isExpired(record)) {
      this.cache.delete(id);
      throw new KeyholdError('ERR_UNAUTHENTICATED', 'token expired');
    }
    return record;
  }

  async revoke(id: string): Promise<void> {
    this.generation++;
    this.cache.delete(id);
    try {
      await this.barrier.delete(tokenPath(id));
    } finally {
      this.generation++;
      this.cache.delete(id);
    }
  }
}
