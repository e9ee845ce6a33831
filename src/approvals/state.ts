/**
 * An approval request's life, as pure functions over its record (no I/O: the request store
 * applies them inside a compare-and-set, so two approvers or two executions racing each see the
 * other's write):
 *
 *   pending ──(every rule has its M distinct approvers)──▶ approved ──(requester executes)──▶ executed
 *      │  └──(an approver denies)──▶ denied                 │
 *      └──(requester cancels)──▶ cancelled ◀────────────────┘
 *   pending or approved, past expires_at: expired (derived from the clock, never stored)
 *
 * Every transition refuses with a code when it does not apply, so a caller learns why.
 */
import { KeyholdError } from '../errors.js';
import type { ApprovalRule } from './policy-store.js';

export type StoredState = 'pending' | 'approved' | 'denied' | 'cancelled' | 'executed';
export type ApprovalState = StoredState | 'expired';
export const APPROVAL_STATES: readonly ApprovalState[] = ['pending', 'approved', 'denied', 'cancelled', 'executed', 'expired'];

export interface Decision {
  /**
   * The approver's operator account (`operator:<name>`): approvers are operators, and keying
   * decisions by the account counts one person once whatever tokens (password or SSO login) they hold.
   */
  person: string;
  at: string;
  /** Indexes into `rules` of the rules whose group the person was a member of when deciding. */
  rules: number[];
}

export interface ApprovalRecord {
  id: string;
  /** personOf(token) of the requester. */
  requester: string;
  /** The requester's operator account, when the requester's token names one (so they cannot approve as that account either). */
  requesterOperator?: string;
  operation: string;
  method: string;
  /** Path and query, exactly as requested. */
  url: string;
  /** The operation's policy path (what approval policies match). */
  path: string;
  /** The exact parsed body, run as is on execution (null: none). Scrubbed to its shown form once the request is over, when it holds credentials. */
  body: unknown;
  paramsSha256: string;
  createdAt: string;
  expiresAt: string;
  /** The rules it was created under: a later change to a policy does not change them. */
  rules: ApprovalRule[];
  state: StoredState;
  approvals: Decision[];
  denials: Array<Decision & { reason?: string }>;
  approvedAt?: string;
  deniedAt?: string;
  cancelledAt?: string;
  executedAt?: string;
  /** The action's answer (status only: the body went to the requester). */
  executionStatus?: number;
}

export function isExpired(record: ApprovalRecord, now: number): boolean {
  return (record.state === 'pending' || record.state === 'approved') && Date.parse(record.expiresAt) <= now;
}

export function effectiveState(record: ApprovalRecord, now: number): ApprovalState {
  return isExpired(record, now) ? 'expired' : record.state;
}

/** Pending or approved, and not expired: what the limits on open requests count (request-store.ts). */
export function isOpen(record: ApprovalRecord, now: number): boolean {
  return (record.state === 'pending' || record.state === 'approved') && !isExpired(record, now);
}

/**
 * When the request ended (ms since the epoch): denied, cancelled, executed or expired; undefined
 * while it is open. Every ended state is final (no transition leaves it), so a request found ended
 * stays ended: what the retention sweep and the open-request index rely on.
 */
export function endedAt(record: ApprovalRecord, now: number): number | undefined {
  switch (record.state) {
    case 'denied': return Date.parse(record.deniedAt ?? record.expiresAt);
    case 'cancelled': return Date.parse(record.cancelledAt ?? record.expiresAt);
    case 'executed': return Date.parse(record.executedAt ?? record.expiresAt);
    default: return isExpired(record, now) ? Date.parse(record.expiresAt) : undefined;
  }
}

/**
 * The persons (`operator:<name>`) in each rule's group now, by rule index. An approval counts for a
 * rule only while its giver is still in the group: someone removed from it (left, or was found
 * out) no longer vouches for requests they approved before.
 */
export type CurrentMembers = readonly ReadonlySet<string>[];

/** Approvals counted for rule `i`: distinct persons who were members of its group (and, given `members`, still are). */
export function approvalsFor(record: ApprovalRecord, i: number, members?: CurrentMembers): number {
  const current = members?.[i];
  return new Set(record.approvals.filter((d) => d.rules.includes(i) && (!current || current.has(d.person))).map((d) => d.person)).size;
}

export function isSatisfied(record: ApprovalRecord, members?: CurrentMembers): boolean {
  return record.rules.every((rule, i) => approvalsFor(record, i, members) >= rule.required);
}

function refuse(code: 'ERR_APPROVAL_STATE' | 'ERR_APPROVAL_EXPIRED', record: ApprovalRecord, now: number, wanted: string): never {
  const state = effectiveState(record, now);
  if (code === 'ERR_APPROVAL_EXPIRED' || state === 'expired') throw new KeyholdError('ERR_APPROVAL_EXPIRED', `approval request ${record.id} expired at ${record.expiresAt}`);
  throw new KeyholdError('ERR_APPROVAL_STATE', `approval request ${record.id} is ${state}; ${wanted}`, { details: { state } });
}

/** An approver: a person with an operator account. */
export interface Approver { person: string; operator: string }

/** The checks an approver's decision must pass, before their second factor is even asked for. */
export function assertCanDecide(record: ApprovalRecord, approver: Approver, memberOf: readonly number[], now: number): void {
  if (effectiveState(record, now) !== 'pending') refuse('ERR_APPROVAL_STATE', record, now, 'only a pending request can be approved or denied');
  if (isRequester(record, approver) || `operator:${approver.operator}` === record.requester) {
    throw new KeyholdError('ERR_APPROVAL_SELF', 'the requester cannot approve or deny their own request');
  }
  if (memberOf.length === 0) throw new KeyholdError('ERR_APPROVAL_NOT_APPROVER', `operator "${approver.operator}" is not a member of ${record.rules.map((r) => `"${r.group}"`).join(' or ')}`);
  const decided = (d: Decision) => d.person === `operator:${approver.operator}`;
  if (record.approvals.some(decided) || record.denials.some(decided)) throw new KeyholdError('ERR_APPROVAL_ALREADY_DECIDED', 'this person has already decided on this request');
}

export function approve(record: ApprovalRecord, approver: Approver, memberOf: readonly number[], now: number, members?: CurrentMembers): ApprovalRecord {
  assertCanDecide(record, approver, memberOf, now);
  const at = new Date(now).toISOString();
  const next: ApprovalRecord = { ...record, approvals: [...record.approvals, { person: `operator:${approver.operator}`, at, rules: [...memberOf] }] };
  return isSatisfied(next, members) ? { ...next, state: 'approved', approvedAt: at } : next;
}

/** One eligible approver's denial ends the request (as a Fortanix quorum does). */
export function deny(record: ApprovalRecord, approver: Approver, memberOf: readonly number[], now: number, reason?: string): ApprovalRecord {
  assertCanDecide(record, approver, memberOf, now);
  const at = new Date(now).toISOString();
  return { ...record, state: 'denied', deniedAt: at, denials: [...record.denials, { person: `operator:${approver.operator}`, at, rules: [...memberOf], ...(reason ? { reason } : {}) }] };
}

/** The caller as a person: personOf(token), and the operator account their token names, if any. */
export interface Caller { person: string; operator?: string }

/** The requester, whichever of their logins (password or linked SSO) they use now. */
export function isRequester(record: ApprovalRecord, caller: Caller): boolean {
  return caller.person === record.requester || (caller.operator !== undefined && caller.operator === record.requesterOperator);
}

export function assertRequester(record: ApprovalRecord, caller: Caller): void {
  if (!isRequester(record, caller)) throw new KeyholdError('ERR_APPROVAL_NOT_REQUESTER', 'only the requester can cancel or execute a request');
}

export function cancel(record: ApprovalRecord, caller: Caller, now: number): ApprovalRecord {
  assertRequester(record, caller);
  const state = effectiveState(record, now);
  if (state !== 'pending' && state !== 'approved') refuse('ERR_APPROVAL_STATE', record, now, 'only a pending or approved request can be cancelled');
  return { ...record, state: 'cancelled', cancelledAt: new Date(now).toISOString() };
}

export function assertExecutable(record: ApprovalRecord, now: number, members?: CurrentMembers): void {
  if (effectiveState(record, now) !== 'approved') refuse('ERR_APPROVAL_STATE', record, now, 'only an approved request can be executed, once');
  if (members && !isSatisfied(record, members)) {
    throw new KeyholdError('ERR_APPROVAL_STATE', `approval request ${record.id}: some of its approvers are no longer in the group, so its quorum is not met any more; request it again`, { details: { state: 'approved' } });
  }
}

/** approved → executed, before the action runs: whoever commits this first is the one execution. */
export function beginExecution(record: ApprovalRecord, caller: Caller, now: number, members?: CurrentMembers): ApprovalRecord {
  assertRequester(record, caller);
  assertExecutable(record, now, members);
  return { ...record, state: 'executed', executedAt: new Date(now).toISOString() };
}
