import { hash, randomBytes } from 'node:crypto';
import type { BarrierRead } from '../barrier/barrier.js';
import type { ViewWrite } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { DEFAULT_MAX_TTL_SECONDS, tokenExpiresAt } from './token-expiry.js';
import { childKey, expiryKey, removeOwned, type AccessorIndexRecord, type ExpiryRecord, type TokenViews } from './token-paths.js';
import { readTree } from './token-tree.js';

export const TOKEN_PREFIX = 'khs.';
export const ACCESSOR_PREFIX = 'kha.';
/** `kha.` + 24 random bytes in base64url. */
export const ACCESSOR_PATTERN = /^kha\.[A-Za-z0-9_-]{32}$/;
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
 * commit. Look-ups go through the barrier's shared read cache (every request needs one); the
 * commits of revocation and sweep evict there.
 */
export class TokenStore {
  readonly maxTtlSeconds: number;

  constructor(private readonly views: TokenViews, options: TokenStoreOptions = {}) {
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
  }

  /**
   * `alsoWrite(record)` adds records written in the same atomic commit (e.g. a revocation index
   * that must exist whenever the token does); they are deleted with the token.
   */
  async create(input: CreateTokenInput, alsoWrite?: (record: TokenRecord) => ViewWrite[]): Promise<{ token: string; record: TokenRecord }> {
    if (input.ttlSeconds !== undefined && !(Number.isSafeInteger(input.ttlSeconds) && input.ttlSeconds > 0)) throw new KeyholdError('ERR_BAD_REQUEST', 'ttl must be a positive whole number of seconds');
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const id = tokenId(token);
    const accessor = newAccessor();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const now = Date.now();
      // The parent as stored now (not as cached): the commit below is conditional on these bytes,
      // so a parent revoked meanwhile makes it fail instead of leaving a child behind.
      const parentRead = input.parent ? await this.views.tokens.read<TokenRecord>(input.parent.id) : undefined;
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
      const owned: ViewWrite[] = [
        this.views.tokens.write(id, record),
        this.views.accessors.write(accessor, { id } satisfies AccessorIndexRecord),
        ...(parent ? [this.views.children.write(childKey(parent.id, id), {})] : []),
        ...(alsoWrite?.(record) ?? []),
      ];
      const writes = [...owned];
      if (expiresAtMs !== undefined) writes.push(this.views.expiry.write(expiryKey(expiresAtMs, id), { paths: owned.map((w) => w.path) } satisfies ExpiryRecord));
      if (parentRead && parent) writes.push(this.views.tokens.write(parent.id, { ...parent, children: (parent.children ?? 0) + 1 }));
      if (await this.views.tokens.commit(parentRead ? [parentRead] : [], writes)) return { token, record };
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
    const due: Array<{ key: string; id: string }> = [];
    for (const key of await this.views.expiry.list()) {
      if (due.length >= limit) break;
      const [at, id] = key.split('/') as [string, string];
      if (Number(at) > now) break; // listed in expiry order: the rest are still live
      due.push({ key, id });
    }
    if (due.length === 0) return 0;
    const expiries = await Promise.all(due.map((d) => this.views.expiry.get<ExpiryRecord>(d.key)));
    // One commit (one fsync) for the whole sweep, not one per token.
    const deletes = due.flatMap((d, i) => [
      ...(expiries[i]?.paths.map((path) => removeOwned(this.views, path)) ?? [this.views.tokens.remove(d.id)]),
      this.views.expiry.remove(d.key),
    ]);
    await this.views.expiry.commit([], deletes);
    return due.length;
  }

  /**
   * The cached record of a live token, synchronously, or undefined when it must be read from
   * storage (`lookup`). Every request needs one, and an await costs more than the look-up.
   */
  cached(token: string): TokenRecord | undefined {
    const record = this.views.tokens.peek<TokenRecord>(tokenId(token));
    return record && !isExpired(record) ? record : undefined;
  }

  /** The record of a live token; ERR_UNAUTHENTICATED for unknown, malformed or expired tokens. */
  async lookup(token: string): Promise<TokenRecord> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) throw new KeyholdError('ERR_UNAUTHENTICATED', 'invalid token');
    const id = tokenId(token);
    let record = await this.views.tokens.cached<TokenRecord>(id);
    if (!record) throw revoked();
    // Giving it an accessor rewrites the record, which evicts it: the next look-up caches the new one.
    if (!record.accessor) record = await this.giveAccessor(await this.views.tokens.read<TokenRecord>(id));
    if (isExpired(record)) throw new KeyholdError('ERR_UNAUTHENTICATED', 'token expired');
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
      const index = this.views.accessors.write(updated.accessor as string, { id: record.id } satisfies AccessorIndexRecord);
      const reads: Array<BarrierRead<unknown>> = [read];
      const writes: ViewWrite[] = [this.views.tokens.write(record.id, updated), index];
      if (record.expiresAt) {
        const key = expiryKey(Date.parse(record.expiresAt), record.id);
        const expiry = await this.views.expiry.read<ExpiryRecord>(key);
        reads.push(expiry);
        if (expiry.value) writes.push(this.views.expiry.write(key, { paths: [...expiry.value.paths, index.path] } satisfies ExpiryRecord));
      }
      if (await this.views.tokens.commit(reads, writes)) return updated;
      read = await this.views.tokens.read<TokenRecord>(record.id);
    }
    throw new KeyholdError('ERR_CONFLICT', 'token record changed concurrently; retry');
  }

  /** The live token an accessor names; ERR_TOKEN_NOT_FOUND when there is none (never existed, revoked or expired). */
  async lookupAccessor(accessor: string): Promise<TokenRecord> {
    const notFound = () => new KeyholdError('ERR_TOKEN_NOT_FOUND', 'no live token has this accessor');
    if (!ACCESSOR_PATTERN.test(accessor)) throw notFound();
    const index = await this.views.accessors.get<AccessorIndexRecord>(accessor);
    if (!index) throw notFound();
    const record = await this.views.tokens.get<TokenRecord>(index.id);
    if (!record || record.accessor !== accessor || isExpired(record)) throw notFound();
    return record;
  }

  /** Every accessor with a token record (expired ones until the sweep reclaims them, within a minute). */
  async listAccessors(): Promise<string[]> {
    return this.views.accessors.list();
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
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const tree = await readTree(this.views, id);
      if (tree.deletes.length === 0) return 0;
      // The commit evicts every record it deletes from the read cache, before and after.
      if (await this.views.tokens.commit(tree.reads, tree.deletes)) return tree.reads.filter((r) => r.value).length;
    }
    throw new KeyholdError('ERR_CONFLICT', 'the token tree kept changing during revocation; retry');
  }
}
