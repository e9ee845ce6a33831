/**
 * Approval policies (src/approvals/policy.ts, policy-store.ts): validation, matching with the
 * policy evaluator's path rules, self-protection, and the snapshot the route guard decides from,
 * on one process and on two replicas of one store. Real SQLite under a real barrier.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../src/errors.js';
import { compileApprovalPolicy, parseApprovalPolicy, type ApprovalPolicyInput } from '../../../src/approvals/policy.js';
import { ApprovalPolicyStore } from '../../../src/approvals/policy-store.js';
import { sqliteFile, TestFeedBus } from '../barrier/support.js';

const valid: ApprovalPolicyInput = { operations: ['key-lifecycle'], paths: ['keys/prod-*'], group: 'custodians', required: 2 };
const invalid = (err: unknown) => isKeyholdError(err, 'ERR_APPROVAL_POLICY_INVALID');

describe('an approval policy document', () => {
  it('is accepted with operation names and named sets', () => {
    const p = parseApprovalPolicy('prod-keys', { ...valid, operations: ['key-lifecycle', 'policies.write'] });
    assert.deepEqual(p.operations, ['key-lifecycle', 'policies.write']);
    assert.equal(p.required, 2);
  });

  it('is refused with an unknown operation, a read-only one, or a repeated one (a typo must not leave a gap)', () => {
    for (const operations of [['keys.rotat'], ['keys.encrypt'], ['keys.read'], ['toString'], ['__proto__'], ['keys.rotate', 'keys.rotate'], []]) {
      assert.throws(() => parseApprovalPolicy('p', { ...valid, operations }), invalid, JSON.stringify(operations));
    }
  });

  it('is refused with paths a policy would refuse, or identity placeholders', () => {
    for (const paths of [[''], ['keys/../sys'], ['keys//x'], ['ke*ys'], ['keys/a+'], ['secrets/{{k8s.namespace}}/x'], [], ['/keys']]) {
      assert.throws(() => parseApprovalPolicy('p', { ...valid, paths }), invalid, JSON.stringify(paths));
    }
  });

  it('is refused with a bad name, group or quorum size', () => {
    assert.throws(() => parseApprovalPolicy('Bad Name', valid), invalid);
    assert.throws(() => parseApprovalPolicy('p', { ...valid, group: 'Not A Group' }), invalid);
    for (const required of [0, -1, 33, 1.5, Number.NaN]) assert.throws(() => parseApprovalPolicy('p', { ...valid, required }), invalid, String(required));
  });

  it('matches paths as a policy rule does: * suffix, + one segment', () => {
    const c = compileApprovalPolicy(parseApprovalPolicy('p', { ...valid, paths: ['keys/prod-*', 'sys/policies/+'] }));
    assert.ok(c.matches('keys/prod-payments'));
    assert.ok(!c.matches('keys/dev-payments'));
    assert.ok(c.matches('sys/policies/ops'));
    assert.ok(!c.matches('sys/policies'));
    assert.ok(c.operations.has('keys.rotate') && c.operations.has('keys.configure') && c.operations.has('keys.delete'));
    assert.ok(!c.operations.has('policies.write'));
  });
});

function openStore(shared = false) {
  const file = sqliteFile('approval-policies');
  const barrier = new Barrier(file.open(), randomBytes(32));
  return { store: new ApprovalPolicyStore(barrier.view(MOUNTS.approvalPolicies), barrier.view(MOUNTS.approvals), shared), barrier };
}

describe('the approval policy store', () => {
  it('protects nothing while empty', async () => {
    const { store } = openStore();
    await store.load();
    for (const op of ['keys.rotate', 'approvals.policies.write', 'keys.encrypt']) assert.equal(store.protects(op), false, op);
    assert.deepEqual(store.rulesFor('keys.rotate', 'keys/prod-x'), []);
  });

  it('protects what a policy names as soon as it is written, and approval-policy changes with it', async () => {
    const { store } = openStore();
    await store.load();
    await store.put('prod-keys', valid);
    assert.equal(store.protects('keys.rotate'), true);
    assert.equal(store.protects('keys.delete'), true);
    assert.equal(store.protects('policies.write'), false);
    assert.equal(store.protects('approvals.policies.write'), true, 'every policy protects itself');
    assert.deepEqual(store.rulesFor('keys.rotate', 'keys/prod-pay'), [{ policy: 'prod-keys', group: 'custodians', required: 2 }]);
    assert.deepEqual(store.rulesFor('keys.rotate', 'keys/dev-pay'), []);
    await store.delete('prod-keys');
    assert.equal(store.protects('keys.rotate'), false);
    assert.equal(store.protects('approvals.policies.write'), false);
  });

  it('a policy protects itself: changing or deleting P needs P, plus any policy covering approval-policy changes there', async () => {
    const { store } = openStore();
    await store.load();
    await store.put('prod-keys', valid);
    await store.put('meta', { operations: ['approval-policy-changes'], paths: ['sys/approvals/policies/*'], group: 'security', required: 3 });
    assert.deepEqual(store.rulesFor('approvals.policies.write', 'sys/approvals/policies/prod-keys').map((r) => r.policy), ['meta', 'prod-keys']);
    assert.deepEqual(store.rulesFor('approvals.policies.delete', 'sys/approvals/policies/prod-keys').map((r) => r.policy), ['meta', 'prod-keys']);
    // Creating a new one: only what covers creation.
    assert.deepEqual(store.rulesFor('approvals.policies.write', 'sys/approvals/policies/new').map((r) => r.policy), ['meta']);
    // prod-keys does not name approval-policy changes: it guards only itself, not other policies.
    await store.put('other', { ...valid, paths: ['keys/other'] });
    assert.ok(!store.rulesFor('approvals.policies.write', 'sys/approvals/policies/other').some((r) => r.policy === 'prod-keys'));
  });

  it('keeps its snapshot across a restart (load)', async () => {
    const { store, barrier } = openStore();
    await store.load();
    await store.put('prod-keys', valid);
    const again = new ApprovalPolicyStore(barrier.view(MOUNTS.approvalPolicies), barrier.view(MOUNTS.approvals), false);
    assert.equal(again.protects('keys.rotate'), false, 'nothing before load');
    await again.load();
    assert.equal(again.protects('keys.rotate'), true);
    assert.deepEqual((await again.get('prod-keys')).paths, ['keys/prod-*']);
    await assert.rejects(again.get('nope'), (err) => isKeyholdError(err, 'ERR_APPROVAL_POLICY_NOT_FOUND'));
  });

  it('on a shared store, a replica sees another replica\'s new policy before deciding (fresh)', async () => {
    const file = sqliteFile('approval-replicas');
    const bus = new TestFeedBus();
    const a = bus.replica(file.open());
    const b = bus.replica(file.open());
    const key = randomBytes(32);
    const storeOf = (storage: typeof a.storage) => {
      const barrier = new Barrier(storage, key);
      return new ApprovalPolicyStore(barrier.view(MOUNTS.approvalPolicies), barrier.view(MOUNTS.approvals), true);
    };
    const storeA = storeOf(a.storage);
    const storeB = storeOf(b.storage);
    await storeA.load();
    await storeB.load();
    // Shared: every protectable operation is looked at, and only the fresh snapshot decides.
    assert.equal(storeB.protects('keys.rotate'), true);
    assert.equal(storeB.protects('keys.encrypt'), false);
    await storeB.fresh();
    assert.deepEqual(storeB.rulesFor('keys.rotate', 'keys/prod-x'), []);
    await storeA.put('prod-keys', valid);
    await storeB.fresh();
    assert.deepEqual(storeB.rulesFor('keys.rotate', 'keys/prod-x').map((r) => r.policy), ['prod-keys']);
    await storeA.delete('prod-keys');
    await storeB.fresh();
    assert.deepEqual(storeB.rulesFor('keys.rotate', 'keys/prod-x'), []);
  });
});
