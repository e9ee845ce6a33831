/**
 * Who a caller is, for quorum purposes. A requester must be a person (personOf: an operator or an
 * SSO login; not the root token, a pod's token or a plain token made from one of those); an
 * approver must moreover have an operator account (their second factor is checked there, and
 * group membership names operators).
 */
import { KeyholdError } from '../errors.js';
import { operatorOf, personOf } from '../identity/person.js';
import type { TokenRecord } from '../identity/tokens.js';
import type { Approver, Caller } from './state.js';

/** The caller as a person, or null when the token is not one's. */
export function personCaller(token: TokenRecord | null): Caller | null {
  const person = token ? personOf(token) : null;
  if (!token || person === null) return null;
  const operator = operatorOf(token);
  return { person, ...(operator !== null ? { operator } : {}) };
}

/** The caller as a person, or a 403 saying that this token is not one. */
export function callerPerson(token: TokenRecord | null, what: string): Caller {
  const caller = personCaller(token);
  if (caller === null) {
    throw new KeyholdError('ERR_APPROVAL_NOT_PERSON', `${what} needs a person's login (an operator or SSO login); this token is not a person's (the root token, a pod's token and tokens made from them are not)`);
  }
  return caller;
}

export function approverOf(token: TokenRecord | null): Approver {
  const caller = callerPerson(token, 'approving or denying');
  if (caller.operator === undefined) throw new KeyholdError('ERR_APPROVAL_NOT_APPROVER', 'approvers need an operator account (log in as an operator, or link the SSO login to one)');
  return { person: caller.person, operator: caller.operator };
}
