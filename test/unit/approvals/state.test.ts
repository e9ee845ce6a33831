/**
 * The approval request state machine (src/approvals/state.ts): pure transitions over a record.
 * The integration tests (test/integration/approvals/) drive the same rules through a real server.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyholdError, type KeyholdErrorCode } from '../../../src/errors.js';
import {
  approve, approvalsFor, beginExecution, cancel, deny, effectiveState, endedAt, isOpen, isSatisfied, type ApprovalRecord, type Approver,
} from '../../../src/approvals/state.js';
import { limitReached, unexpired, type OpenEntry } from '../../../src/approvals/open-index.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const HOUR = 3600_000;

function record(overrides: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id: 'apr_AAAAAAAAAAAAAAAAAAAAAA', requester: 'operator:rita', requesterOperator: 'rita',
    operation: 'keys.rotate', method: 'POST', url: '/v1/keys/pay/rotate', path: 'keys/pay', body: null, paramsSha256: 'a'.repeat(64),
    createdAt: new Date(T0).toISOString(), expiresAt: new Date(T0 + 24 * HOUR).toISOString(),
    rules: [{ policy: 'keys', group: 'custodians', required: 2 }], state: 'pending', approvals: [], denials: [],
    ...overrides,
  };
}

const op = (name: string): Approver => ({ person: `operator:${name}`, operator: name });
const refused = (code: KeyholdErrorCode) => (err: unknown) => isKeyholdError(err, code);

describe('approving', () => {
  it('needs M distinct approvers: one approval leaves it pending, the second approves it', () => {
    const one = approve(record(), op('alice'), [0], T0 + 1000);
    assert.equal(one.state, 'pending');
    assert.equal(approvalsFor(one, 0), 1);
    const two = approve(one, op('bob'), [0], T0 + 2000);
    assert.equal(two.state, 'approved');
    assert.equal(two.approvedAt, new Date(T0 + 2000).toISOString());
    assert.deepEqual(two.approvals.map((d) => d.person), ['operator:alice', 'operator:bob']);
  });

  it('counts a person once, whatever login they use (password token, SSO token linked to the same account)', () => {
    const once = approve(record(), op('alice'), [0], T0);
    assert.throws(() => approve(once, op('alice'), [0], T0), refused('ERR_APPROVAL_ALREADY_DECIDED'));
    assert.throws(() => approve(once, { person: 'oidc:alice-sub', operator: 'alice' }, [0], T0), refused('ERR_APPROVAL_ALREADY_DECIDED'));
    // Even a record written with a duplicate counts it once.
    const forged = { ...once, approvals: [...once.approvals, ...once.approvals] };
    assert.equal(approvalsFor(forged, 0), 1);
    assert.equal(isSatisfied(forged), false);
  });

  it('refuses the requester, by person or by operator account', () => {
    assert.throws(() => approve(record(), op('rita'), [0], T0), refused('ERR_APPROVAL_SELF'));
    assert.throws(() => approve(record(), { person: 'oidc:rita-sub', operator: 'rita' }, [0], T0), refused('ERR_APPROVAL_SELF'));
    const bySso = record({ requester: 'oidc:rita-sub', requesterOperator: undefined });
    assert.throws(() => approve(bySso, { person: 'oidc:rita-sub', operator: 'rita' }, [0], T0), refused('ERR_APPROVAL_SELF'));
    assert.throws(() => deny(record(), op('rita'), [0], T0), refused('ERR_APPROVAL_SELF'));
  });

  it('refuses a person who is a member of none of the rules\' groups', () => {
    assert.throws(() => approve(record(), op('mallory'), [], T0), refused('ERR_APPROVAL_NOT_APPROVER'));
  });

  it('refuses once expired, and shows the request as expired', () => {
    const late = T0 + 24 * HOUR;
    assert.equal(effectiveState(record(), late - 1), 'pending');
    assert.equal(effectiveState(record(), late), 'expired');
    assert.throws(() => approve(record(), op('alice'), [0], late), refused('ERR_APPROVAL_EXPIRED'));
    assert.throws(() => deny(record(), op('alice'), [0], late), refused('ERR_APPROVAL_EXPIRED'));
  });

  it('refuses a request that is no longer pending', () => {
    for (const state of ['approved', 'denied', 'cancelled', 'executed'] as const) {
      assert.throws(() => approve(record({ state }), op('alice'), [0], T0), refused('ERR_APPROVAL_STATE'), state);
    }
  });

  it('with several rules, is approved only when every rule has its quorum', () => {
    const twoRules = record({ rules: [{ policy: 'a', group: 'g1', required: 1 }, { policy: 'b', group: 'g2', required: 2 }] });
    const first = approve(twoRules, op('alice'), [0, 1], T0);
    assert.equal(first.state, 'pending', 'rule b has 1 of 2');
    const second = approve(first, op('carol'), [0], T0);
    assert.equal(second.state, 'pending', 'carol is not in g2');
    const third = approve(second, op('bob'), [1], T0);
    assert.equal(third.state, 'approved');
  });
});

describe('denying, cancelling, executing', () => {
  it('one eligible denial ends the request', () => {
    const denied = deny(record(), op('alice'), [0], T0, 'not today');
    assert.equal(denied.state, 'denied');
    assert.equal(denied.denials[0]?.reason, 'not today');
    assert.throws(() => approve(denied, op('bob'), [0], T0), refused('ERR_APPROVAL_STATE'));
    assert.throws(() => deny(record(), op('mallory'), [], T0), refused('ERR_APPROVAL_NOT_APPROVER'));
  });

  it('only the requester cancels, while pending or approved', () => {
    assert.throws(() => cancel(record(), { person: 'operator:alice', operator: 'alice' }, T0), refused('ERR_APPROVAL_NOT_REQUESTER'));
    assert.equal(cancel(record(), { person: 'operator:rita', operator: 'rita' }, T0).state, 'cancelled');
    assert.equal(cancel(record({ state: 'approved' }), { person: 'oidc:x', operator: 'rita' }, T0).state, 'cancelled', 'the same account by another login');
    assert.throws(() => cancel(record({ state: 'executed' }), { person: 'operator:rita' }, T0), refused('ERR_APPROVAL_STATE'));
  });

  it('executes an approved request once: executed is final', () => {
    const approved = record({ state: 'approved' });
    const rita = { person: 'operator:rita', operator: 'rita' };
    const executed = beginExecution(approved, rita, T0);
    assert.equal(executed.state, 'executed');
    assert.throws(() => beginExecution(executed, rita, T0), refused('ERR_APPROVAL_STATE'));
    assert.throws(() => cancel(executed, rita, T0), refused('ERR_APPROVAL_STATE'));
  });

  it('refuses to execute a pending, denied or expired request, or someone else\'s', () => {
    const rita = { person: 'operator:rita', operator: 'rita' };
    assert.throws(() => beginExecution(record(), rita, T0), refused('ERR_APPROVAL_STATE'));
    assert.throws(() => beginExecution(record({ state: 'denied' }), rita, T0), refused('ERR_APPROVAL_STATE'));
    assert.throws(() => beginExecution(record({ state: 'approved' }), rita, T0 + 24 * HOUR), refused('ERR_APPROVAL_EXPIRED'));
    assert.throws(() => beginExecution(record({ state: 'approved' }), { person: 'operator:alice', operator: 'alice' }, T0), refused('ERR_APPROVAL_NOT_REQUESTER'));
  });
});

describe('when a request ended (the retention sweep and the limits)', () => {
  const at = (h: number) => new Date(T0 + h * HOUR).toISOString();
  it('an open request (pending or approved, before expiry) has not ended', () => {
    for (const state of ['pending', 'approved'] as const) {
      assert.equal(endedAt(record({ state }), T0 + HOUR), undefined);
      assert.equal(isOpen(record({ state }), T0 + HOUR), true);
    }
  });
  it('ended when denied, cancelled or executed, at that moment; when expired, at expires_at', () => {
    assert.equal(endedAt(record({ state: 'denied', deniedAt: at(1) }), T0 + 2 * HOUR), T0 + HOUR);
    assert.equal(endedAt(record({ state: 'cancelled', cancelledAt: at(2) }), T0 + 3 * HOUR), T0 + 2 * HOUR);
    assert.equal(endedAt(record({ state: 'executed', executedAt: at(3) }), T0 + 4 * HOUR), T0 + 3 * HOUR);
    for (const state of ['pending', 'approved'] as const) {
      assert.equal(endedAt(record({ state }), T0 + 25 * HOUR), T0 + 24 * HOUR);
      assert.equal(isOpen(record({ state }), T0 + 24 * HOUR), false, 'expired at expires_at exactly');
    }
    for (const state of ['denied', 'cancelled', 'executed'] as const) assert.equal(isOpen(record({ state }), T0), false);
  });
});

describe('the limits on open requests', () => {
  const entry = (id: string, requester: string, expiresInHours = 1): OpenEntry => ({ id, requester, expiresAt: new Date(T0 + expiresInHours * HOUR).toISOString() });
  const limits = { perRequester: 2, total: 3 };
  it('names the per-person limit first, then the total', () => {
    assert.equal(limitReached([entry('a', 'operator:rita')], 'operator:rita', limits), undefined);
    assert.equal(limitReached([entry('a', 'operator:rita'), entry('b', 'operator:rita')], 'operator:rita', limits), 'requester');
    assert.equal(limitReached([entry('a', 'operator:rita'), entry('b', 'operator:rita')], 'operator:sam', limits), undefined);
    assert.equal(limitReached([entry('a', 'operator:rita'), entry('b', 'operator:rita'), entry('c', 'operator:tom')], 'operator:sam', limits), 'total');
    assert.equal(limitReached([entry('a', 'operator:rita'), entry('b', 'operator:rita'), entry('c', 'operator:tom')], 'operator:rita', limits), 'requester');
  });
  it('expired entries do not count', () => {
    assert.deepEqual(unexpired([entry('a', 'x', 1), entry('b', 'x', -1), entry('c', 'x', 0)], T0).map((e) => e.id), ['a']);
  });
});
