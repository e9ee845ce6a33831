/**
 * Who may request and approve (src/approvals/people.ts), and the execution marker
 * (src/approvals/executions.ts). A pod's token is checked here: its `k8s:` selectors make no
 * person, exactly as the root token's absence of selectors does (the integration tests use root).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyholdError } from '../../../src/errors.js';
import type { TokenRecord } from '../../../src/identity/tokens.js';
import { approverOf, callerPerson } from '../../../src/approvals/people.js';
import { Executions } from '../../../src/approvals/executions.js';

const token = (selectors?: string[]): TokenRecord => ({ id: 'x', policies: ['p'], createdAt: new Date(0).toISOString(), ...(selectors ? { selectors } : {}) });
const notPerson = (err: unknown) => isKeyholdError(err, 'ERR_APPROVAL_NOT_PERSON');

describe('who is a person for quorum', () => {
  it('not the root token, a pod\'s token, or no token', () => {
    assert.throws(() => callerPerson(token(), 'requesting'), notPerson);
    assert.throws(() => callerPerson(token(['k8s:ns:app', 'k8s:sa:app/web', 'k8s:pod:app/web-1', 'k8s:pod-uid:1234']), 'requesting'), notPerson);
    assert.throws(() => callerPerson(null, 'requesting'), notPerson);
    assert.throws(() => approverOf(token(['k8s:ns:app'])), notPerson);
  });

  it('an operator login, and an SSO login (which can request but not approve without an operator account)', () => {
    assert.deepEqual(callerPerson(token(['operator:alice']), 'x'), { person: 'operator:alice', operator: 'alice' });
    assert.deepEqual(callerPerson(token(['oidc:sub-1']), 'x'), { person: 'oidc:sub-1' });
    assert.throws(() => approverOf(token(['oidc:sub-1'])), (err) => isKeyholdError(err, 'ERR_APPROVAL_NOT_APPROVER'));
    assert.deepEqual(approverOf(token(['oidc:sub-1', 'operator:alice'])), { person: 'operator:alice', operator: 'alice' });
  });
});

describe('an execution marker', () => {
  const execution = { id: 'apr_x', operation: 'keys.rotate', method: 'POST', url: '/v1/keys/k/rotate', paramsSha256: 'a'.repeat(64) };

  it('is random, and lets one request through once', () => {
    const marks = new Executions();
    const m1 = marks.issue(execution);
    const m2 = marks.issue(execution);
    assert.notEqual(m1, m2);
    assert.match(m1, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(marks.take(m1)?.id, 'apr_x');
    assert.equal(marks.take(m1), undefined, 'a second use finds nothing');
    assert.equal(marks.take('forged'), undefined);
    assert.equal(marks.release(m2)?.began, false);
    assert.equal(marks.take(m2), undefined, 'released');
  });
});
