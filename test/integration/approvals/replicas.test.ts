/**
 * Quorum approval on two real `keyhold server` replicas sharing one real PostgreSQL: an approval
 * policy written on one replica protects the other at once (its guard reads the policies'
 * generation through the change feed before deciding, never a stale "not protected"), approvals
 * and executions may go to either replica, and an approved request runs once across both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startReplicas, type ReplicaSet } from '../../helpers/replicas.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { approve, createPerson, pending, type Person } from './support.js';

describe('quorum approval on two replicas', { timeout: 10 * 60_000 }, () => {
  let set: ReplicaSet;
  const on = (i: number) => apiCaller(() => ({ address: (set.replicas[i] as { address: string }).address, root: set.rootToken }));
  let rita: Person;
  let alice: Person;
  let bob: Person;
  const keyVersion = async (i: number) => (await on(i).asRoot('GET', '/v1/keys/pay')).latest_version as number;

  before(async () => {
    set = await startReplicas(2);
    const a = on(0);
    await a.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
    await a.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin'], members: ['rita'], external_groups: [] });
    await a.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['keys-admin'], members: ['alice', 'bob'], external_groups: [] });
    rita = await createPerson(a, 'rita');
    alice = await createPerson(a, 'alice');
    bob = await createPerson(a, 'bob');
    await a.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'wrapped' });
  });
  after(async () => set?.destroy());

  it('a policy written on replica A protects replica B at once', async () => {
    // B has decided on this operation before (unprotected): its snapshot must not answer from memory afterwards.
    assertOk(await on(1).call(rita.token, 'POST', '/v1/keys/pay/rotate'), 200, 'unprotected on B');
    await on(0).asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 2 });
    const version = await keyVersion(1);
    pending(await on(1).call(rita.token, 'POST', '/v1/keys/pay/rotate'), 'protected on B right after the write on A');
    assert.equal(await keyVersion(0), version);
  });

  it('approvals on either replica; one execution across both', async () => {
    const version = await keyVersion(0);
    const p = pending(await on(1).call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assertOk(await approve(on(0), alice, p.id, p.params_sha256), 200, 'alice on A');
    const approved = await approve(on(1), bob, p.id, p.params_sha256);
    assertOk(approved, 200, 'bob on B');
    assert.equal(approved.body.state, 'approved');
    const answers = await Promise.all([0, 1, 0, 1].map((i) => on(i).call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/execute`)));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 409, 409, 409], answers.map((a) => a.text.slice(0, 100)).join('\n'));
    assert.equal(await keyVersion(0), version + 1);
    assert.equal(await keyVersion(1), version + 1);
    assertError(await on(1).call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/execute`), 409, 'ERR_APPROVAL_STATE');
  });
});
