/**
 * The limits on open approval requests (pending or approved, not expired) and the one record they
 * are counted from: `open-requests` in the approvals view, an entry per open request (id,
 * requester, expiry). A request is created in the same commit as its entry, conditional on the
 * index being as it was read (request-store.ts `create`), so replicas sharing PostgreSQL count
 * exactly, with no lock held: two creations racing for the last place both read the same index,
 * one commits, the other re-reads and is refused. Counting by listing the requests instead would
 * let each of N racing replicas see one place free (an overshoot of up to N - 1), and would read
 * every stored request on every protected call.
 *
 * Entries leave the index when their request ends: at once after a denial, cancellation or
 * execution (a second commit, best effort), by time for an expiry. An entry can outlive its request
 * (a crash between the two commits), never the reverse, so the count can only be too high, and a
 * creation that finds the limit reached first checks the entries it counted against their records
 * (an ended request never opens again) before refusing.
 */
import { KeyholdError } from '../errors.js';
import type { ApprovalRecord } from './state.js';

export const OPEN_INDEX_KEY = 'open-requests';

export interface OpenEntry {
  id: string;
  /** personOf(token) of the requester (an SSO login linked to an account is the account's person). */
  requester: string;
  expiresAt: string;
}

export interface OpenIndex {
  entries: OpenEntry[];
}

export interface ApprovalLimits {
  /** Open requests one person may have. */
  perRequester: number;
  /** Open requests in all (bounds the index record too: about 100 bytes an entry). */
  total: number;
}

export const DEFAULT_APPROVAL_LIMITS: Readonly<ApprovalLimits> = Object.freeze({ perRequester: 20, total: 1000 });
/** Config bounds (src/core/config.ts): the index is rewritten on every creation, so it stays small. */
export const MAX_OPEN_PER_REQUESTER = 1000;
export const MAX_OPEN_TOTAL = 10_000;

export function openEntry(record: ApprovalRecord): OpenEntry {
  return { id: record.id, requester: record.requester, expiresAt: record.expiresAt };
}

/** Entries of requests not expired at `now`. */
export function unexpired(entries: readonly OpenEntry[], now: number): OpenEntry[] {
  return entries.filter((e) => Date.parse(e.expiresAt) > now);
}

/** Which limit one more request of `requester` would break, if any. */
export function limitReached(entries: readonly OpenEntry[], requester: string, limits: ApprovalLimits): 'requester' | 'total' | undefined {
  if (entries.filter((e) => e.requester === requester).length >= limits.perRequester) return 'requester';
  if (entries.length >= limits.total) return 'total';
  return undefined;
}

export function limitError(which: 'requester' | 'total', requester: string, limits: ApprovalLimits): KeyholdError {
  return which === 'requester'
    ? new KeyholdError('ERR_APPROVAL_LIMIT', `${requester} already has ${limits.perRequester} open approval requests (pending or approved; approvals.maxOpenPerRequester): cancel or execute one, or wait until one ends`, { details: { limit: 'requester', max: limits.perRequester } })
    : new KeyholdError('ERR_APPROVAL_LIMIT', `there are already ${limits.total} open approval requests (pending or approved; approvals.maxOpen): try again once some have ended`, { details: { limit: 'total', max: limits.total } });
}
