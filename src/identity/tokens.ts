import { hash, randomBytes } from 'node:crypto';
import type { Barrier, BarrierRead, BarrierWrite } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';
import { watchBarrierPaths } from '../storage/change-watch.js';
import { DEFAULT_MAX_TTL_SECONDS, tokenExpiresAt } from './token-expiry.js';
import { accessorPath, ACCESSOR_INDEX_PREFIX, childPath, EXPIRY_PREFIX, expiryPath, tokenPath, type AccessorIndexRecord, type ExpiryRecord } from './token-paths.js';
import { readTree } from './token-tree.js';

export const TOKEN_PREFIX = 'khs.';
export const ACCESSOR_PREFIX = 'kha.';
/** `kha.` + 24 random bytes in base64url. */
export const ACCESSOR_PATTERN = /^kha\.[A-Za-z0-9_-]{32}$/;
const MAX_CACHED = 10_000;
/** Commits retried when a concurrent writer changed a record they depend on (a sibling created under the same parent). */
const MAX_ATTEMPTS = 32;

export interface TokenRecord {
  /** sha256 of the token: the token itself is never stored. Also the audit handle (HMAC'd there). */
  id: string;
  /**
   * Non-secret handle (`kha.…`) to look up and revoke the token without holding it. Absent only on
   * a record written before accessors existed, until its first look-up gives it one.
   */
  accessor?: string;
  policies: string[];
  createdAt: string;
  /** ISO time; absent only for the root token made at initialisation. */
  expiresAt?: string;
  displayName?: string;
  /** Token id of the creator; absent for orphans (the root token made at initialisation, pod logins, `no_parent`). */
  parent?: string;
  /** The parent's accessor, so a look-up by accessor can name it without reading the parent. */
  parentAccessor?: string;
  /** Who the holder proved to be at login (e.g. `k8s:ns:app`), shown in audit records; inherited by children. */
  selectors?: string[];
  /**
   * Children created so far. Each child's creation rewrites its parent's record with this count
   * bumped, and a revocation commits only against the exact records of the tree it read: so a
   * child created while its tree is being revoked makes one of the two commits fail and retry.
   */
  children?: number;
}

export interface CreateTokenInput {
  policies: string[];
  /** Requested lifetime; clamped to the server maximum and to the parent's expiry. Absent: the server maximum. */
  ttlSeconds?: number;
  displayName?: string;
  selectors?: string[];
  /** The creating token: the new token is its child (revoked with it, never outliving it). Absent: an orphan. */
  parent?: TokenRecord;
  /** Only for the root token made at initialisation: exempt from the maximum, never expires. */
  neverExpires?: true;
}

export interface TokenStoreOptions {
  /** Server-wide maximum lifetime of every token but the root token made at initialisation. */
  maxTtlSeconds?: number;
}

export function tokenId(token: string): string {
  // One-shot hash: about a third cheaper than createHash().update().digest(), and it runs per request.
  return hash('sha256', token, 'hex');
}

const newAccessor = (): string => ACCESSOR_PREFIX + randomBytes(24).toString('base64url');

function isExpired(record: TokenRecord, now = Date.now()): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now;
}

const revoked = () => new KeyholdError('ERR_UNAUTHENTICATED', 'invalid token');

/**
 * Bearer tokens: 256 random bits, stored only as their hash with TTL and policies. Tokens form a
 * tree (a token made with a token is its child); revoking one revokes its descendants in the same
 * commit. Look-ups are cached in memory (invalidated on revoke) because every request needs one.
 */
export class TokenStore {
  private readonly cache = new Map<string, TokenRecord>();
  /** Bumped by every revoke: a look-up that started before it must not cache what it read. */
  private generation = 0;
  /**
   * Bumped by every token change another replica made (creations too): a look-up that overlapped
   * one uses what it read (the change was concurrent with it) but does not cache it.
   */
  private remoteGeneration = 0;
  readonly maxTtlSeconds: number;

  constructor(private readonly barrier: Barrier, options: TokenStoreOptions = {}) {
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    // A revocation (or sweep) on another replica: as for a local revoke, forget the token and let
    // no look-up that overlapped it cache what it read.
    const prefix = tokenPath('');
    watchBarrierPaths(barrier.changes, prefix, (paths) => {
      this.remoteGeneration++;
      if (paths === 'all') this.cache.clear();
      else for (const p of paths) this.cache.delete(p.slice(prefix.length));
    });
  }

  /**
   * `alsoWrite(record)` adds records written in the same atomic commit (e.g. a revocation index
   * that must exist whenever the token does); they are deleted with the token.
   */
  async create(input: CreateTokenInput, alsoWrite?: (record: TokenRecord) => BarrierWrite[]): Promise<{ token: string; record: TokenRecord }> {
    if (input.ttlSeconds !== undefined && !(Number.isSafeInteger(input.ttlSeconds) && input.ttlSeconds > 0)) throw new KeyholdError('ERR_BAD_REQUEST', 'ttl must be a positive whole number of seconds');
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const id = tokenId(token);
    const accessor = newAccessor();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const now = Date.now();
      // The parent as stored now (not as cached): the commit below is conditional on these bytes,
      // so a parent revoked meanwhile makes it fail instead of leaving a child behind.
      const parentRead = input.parent ? await this.barrier.read<TokenRecord>(tokenPath(input.parent.id)) : undefined;
      const parent = parentRead?.value ?? undefined;
      if (parentRead && (!parent || isExpired(parent, now))) throw revoked();
      const expiresAtMs = input.neverExpires ? undefined : tokenExpiresAt(now, input.ttlSeconds, this.maxTtlSeconds, parent?.expiresAt ? Date.parse(parent.expiresAt) : undefined);
      const record: TokenRecord = {
        id,
        accessor,
        policies: [...new Set(input.policies)].sort(),
        createdAt: new Date(now).toISOString(),
        ...(expiresAtMs !== undefined ? { expiresAt: new Date(expiresAtMs).toISOString() } : {}),
        ...(input.displayName ? { displayName: input.displayName } : {}),
        ...(parent ? { parent: parent.id, ...(parent.accessor ? { parentAccessor: parent.accessor } : {}) } : {}),
        ...(input.selectors ? { selectors: [...input.selectors] } : {}),
      };
      // Everything that names this token: deleted with it by revocation and by the expiry sweep.
      const owned: BarrierWrite[] = [
        { path: tokenPath(id), value: record },
        { path: accessorPath(accessor), value: { id } satisfies AccessorIndexRecord },
        ...(parent ? [{ path: childPath(parent.id, id), value: {} }] : []),
        ...(alsoWrite?.(record) ?? []),
      ];
      const writes = [...owned];
      if (expiresAtMs !== undefined) writes.push({ path: expiryPath(expiresAtMs, id), value: { paths: owned.map((w) => w.path) } satisfies ExpiryRecord });
      if (parentRead && parent) writes.push({ path: parentRead.path, value: { ...parent, children: (parent.children ?? 0) + 1 } });
      if (await this.barrier.commit(parentRead ? [parentRead] : [], writes)) return { token, record };
    }
    throw new KeyholdError('ERR_CONFLICT', 'too many tokens created under one parent at once; retry');
  }

  /**
   * Deletes up to `limit` expired tokens and what was written with them (accessor and child
   * indexes, a pod's index), oldest first; returns how many. Without it every login (a sidecar
   * logs in again at each refresh) would leave records behind for ever. An expired token is
   * already refused by `lookup`; this only reclaims space. A child never expires after its
   * parent, so a tree goes leaves first or together.
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
      const remoteGeneration = this.remoteGeneration;
      const read = await this.barrier.read<TokenRecord>(tokenPath(id));
      if (!read.value) throw revoked();
      record = read.value.accessor ? read.value : await this.giveAccessor(read);
      // A revoke may have run while we read: then what we read is stale and must not be cached or used.
      if (generation !== this.generation) return this.lookup(token);
      if (remoteGeneration === this.remoteGeneration) {
        if (this.cache.size >= MAX_CACHED) this.cache.clear();
        this.cache.set(id, record);
      }
    }
    if (isExpired(record)) {
      this.cache.delete(id);
      throw new KeyholdError('ERR_UNAUTHENTICATED', 'token expired');
    }
    return record;
  }

  /**
   * A record written before accessors existed (e.g. the root token of an older store) gets one at
   * its first look-up, with its index, in one commit conditional on the record (and its expiry
   * record, which must name the new index so the sweep deletes it too).
   */
  private async giveAccessor(read: BarrierRead<TokenRecord>): Promise<TokenRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const record = read.value;
      if (!record) throw revoked();
      if (record.accessor) return record;
      const updated: TokenRecord = { ...record, accessor: newAccessor() };
      const index = accessorPath(updated.accessor as string);
      const reads: Array<BarrierRead<unknown>> = [read];
      const writes: BarrierWrite[] = [{ path: read.path, value: updated }, { path: index, value: { id: record.id } satisfies AccessorIndexRecord }];
      if (record.expiresAt) {
        const expiry = await this.barrier.read<ExpiryRecord>(expiryPath(Date.parse(record.expiresAt), record.id));
        reads.push(expiry);
        if (expiry.value) writes.push({ path: expiry.path, value: { paths: [...expiry.value.paths, index] } satisfies ExpiryRecord });
      }
      if (await this.barrier.commit(reads, writes)) return updated;
      read = await this.barrier.read<TokenRecord>(read.path);
    }
    throw new KeyholdError('ERR_CONFLICT', 'token record changed concurrently; retry');
  }

  /** The live token an accessor names; ERR_TOKEN_NOT_FOUND when there is none (never existed, revoked or expired). */
  async lookupAccessor(accessor: string): Promise<TokenRecord> {
    const notFound = () => new KeyholdError('ERR_TOKEN_NOT_FOUND', 'no live token has this accessor');
    if (!ACCESSOR_PATTERN.test(accessor)) throw notFound();
    const index = await this.barrier.getJson<AccessorIndexRecord>(accessorPath(accessor));
    if (!index) throw notFound();
    const record = await this.barrier.getJson<TokenRecord>(tokenPath(index.id));
    if (!record || record.accessor !== accessor || isExpired(record)) throw notFound();
    return record;
  }

  /** Every accessor with a token record (expired ones until the sweep reclaims them, within a minute). */
  async listAccessors(): Promise<string[]> {
    return (await this.barrier.list(ACCESSOR_INDEX_PREFIX)).map((p) => p.slice(ACCESSOR_INDEX_PREFIX.length));
  }

  /** Revokes the token an accessor names, with its descendants; ERR_TOKEN_NOT_FOUND when there is none. */
  async revokeAccessor(accessor: string): Promise<number> {
    const record = await this.lookupAccessor(accessor);
    return this.revoke(record.id);
  }

  /**
   * Revokes a token and all its descendants in one commit; returns how many tokens went. The
   * commit is conditional on every record of the tree as read, and a child's creation rewrites its
   * parent's record: a child created meanwhile makes this commit fail and the tree is read again,
   * and a child committed after this cannot be, as its parent's record is gone.
   */
  async revoke(id: string): Promise<number> {
    this.generation++;
    let ids = [id];
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const tree = await readTree(this.barrier, id);
        ids = tree.ids;
        for (const i of ids) this.cache.delete(i);
        if (tree.deletes.length === 0) return 0;
        if (await this.barrier.commit(tree.reads, tree.deletes.map((path) => ({ path, delete: true as const })))) return tree.reads.filter((r) => r.value).length;
      }
      throw new KeyholdError('ERR_CONFLICT', 'the token tree kept changing during revocation; retry');
    } finally {
      // Look-ups that overlapped the commit must not cache what they read, and nothing cached survives.
      this.generation++;
      for (const i of ids) this.cache.delete(i);
    }
  }
}
