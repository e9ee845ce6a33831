/**
 * Red team, quorum approval vs group membership over time: an approval counts only while its giver
 * is still in the rule's group. Someone removed from the group (left, or was found out) must not
 * keep vouching for requests they approved before: not toward reaching the quorum, and not at
 * execution of a request their approval completed.
 * Real `keyhold dev` server, real operator accounts enrolled with TOTP (otplib).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { approve, createPerson, pending, type Person } from '../approvals/support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person;
let alice: Person;
let bob: Person;
let carol: Person;
let dave: Person;
let erin: Person;

const keyVersion = async (name: string): Promise<number> => (await api.asRoot('GET', `/v1/keys/${name}`)).latest_version as number;
const execute = (id: string) => api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/execute`);

/** Sets the custodians' members through the group's own quorum (approved by `by`). */
async function setCustodians(members: string[], by: Person[]): Promise<void> {
  const p = pending(await api.call(rita.token, 'PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members, external_groups: [] }), 'group change');
  for (const person of by) assertOk(await approve(api, person, p.id, p.params_sha256), 200, `${person.name} approves the group change`);
  assertOk(await execute(p.id), 200, 'group change executed');
}

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'create', 'update', 'rotate', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/policies/groups-admin', { rules: [{ path: 'sys/groups/*', capabilities: ['read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'groups-admin', 'approvals-read'], members: ['rita'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob', 'carol', 'dave', 'erin'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  alice = await createPerson(api, 'alice');
  bob = await createPerson(api, 'bob');
  carol = await createPerson(api, 'carol');
  dave = await createPerson(api, 'dave');
  erin = await createPerson(api, 'erin');
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/pay-keys', { operations: ['key-rotate'], paths: ['keys/pay*'], group: 'custodians', required: 2 });
});

after(async () => {
  await server?.stop();
});

describe('an approver removed from the group no longer counts', () => {
  let pendingOne: { id: string; params_sha256: string };
  let approvedOne: { id: string; params_sha256: string };

  it('alice approves one request; alice and bob approve (complete) another', async () => {
    pendingOne = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 'first rotate');
    assertOk(await approve(api, alice, pendingOne.id, pendingOne.params_sha256), 200);
    approvedOne = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 'second rotate');
    assertOk(await approve(api, alice, approvedOne.id, approvedOne.params_sha256), 200);
    const res = await approve(api, bob, approvedOne.id, approvedOne.params_sha256);
    assertOk(res, 200);
    assert.equal(res.body.state, 'approved');
  });

  it('alice is removed from the custodians (through their quorum)', async () => {
    await setCustodians(['bob', 'carol', 'dave', 'erin'], [carol, dave]);
  });

  it('one more approval does not reach the quorum: alice\'s earlier one no longer counts', async () => {
    const res = await approve(api, erin, pendingOne.id, pendingOne.params_sha256);
    assertOk(res, 200);
    assert.equal(res.body.state, 'pending');
    assertError(await execute(pendingOne.id), 409, 'ERR_APPROVAL_STATE');
  });

  it('a request alice\'s approval completed cannot be executed any more, and nothing runs', async () => {
    const before = await keyVersion('pay');
    assertError(await execute(approvedOne.id), 409, 'ERR_APPROVAL_STATE');
    assert.equal(await keyVersion('pay'), before);
  });

  it('a second current member completes the pending one, which then runs once', async () => {
    const before = await keyVersion('pay');
    const res = await approve(api, carol, pendingOne.id, pendingOne.params_sha256);
    assertOk(res, 200);
    assert.equal(res.body.state, 'approved');
    assertOk(await execute(pendingOne.id), 200);
    assert.equal(await keyVersion('pay'), before + 1);
  });
});
