/**
 * Red team, quorum approval vs the group an approval policy names. Whoever may write that group
 * decides who the approvers are: replacing its members with two accounts they control, or
 * deleting it and making it again, gives them every quorum the policy guards (and the policy's
 * own). So a change to the group an approval policy names needs that policy's quorum, as a change
 * to the policy itself does, whether or not the policy lists `group-changes`.
 * Real `keyhold dev` server, real operator accounts enrolled with TOTP (otplib).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { approve, createPerson, pending, type Person } from '../approvals/support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person; // requester, who may also administer groups (a careless but common set-up)
let alice: Person;
let bob: Person;
let mallory: Person; // rita's accomplice, outside the custodians

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'create', 'update', 'rotate', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/groups-admin', { rules: [{ path: 'sys/groups', capabilities: ['list'] }, { path: 'sys/groups/*', capabilities: ['read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'groups-admin', 'approvals-read'], members: ['rita'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob', 'carol'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/others', { policies: ['approvals-read'], members: ['mallory'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  alice = await createPerson(api, 'alice');
  bob = await createPerson(api, 'bob');
  await createPerson(api, 'carol');
  mallory = await createPerson(api, 'mallory');
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  // The policy protects key rotation only; it does not list group-changes.
  await api.asRoot('PUT', '/v1/sys/approvals/policies/pay-keys', { operations: ['key-lifecycle'], paths: ['keys/pay*'], group: 'custodians', required: 2 });
});

after(async () => {
  await server?.stop();
});

describe('the group an approval policy names is protected by that policy', () => {
  it('replacing its members needs the policy\'s quorum (202), and the group is unchanged', async () => {
    const res = await api.call(rita.token, 'PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['mallory', 'rita'], external_groups: [] });
    const p = pending(res, 'rita rewrites the custodians group');
    assert.deepEqual(p.rules.map((r) => r.policy), ['pay-keys']);
    const group = await api.asRoot('GET', '/v1/sys/groups/custodians');
    assert.deepEqual(group.members, ['alice', 'bob', 'carol']);
  });

  it('deleting it needs the policy\'s quorum too (a re-made group would name new approvers)', async () => {
    pending(await api.call(rita.token, 'DELETE', '/v1/sys/groups/custodians'), 'rita deletes the custodians group');
    assert.deepEqual((await api.asRoot('GET', '/v1/sys/groups/custodians')).members, ['alice', 'bob', 'carol']);
  });

  it('root cannot change it either (root is not a person and cannot request), as for the policy itself', async () => {
    assertError(await api.call(server.rootToken, 'PUT', '/v1/sys/groups/custodians', { policies: [], members: ['mallory', 'rita'], external_groups: [] }), 403, 'ERR_APPROVAL_NOT_PERSON');
  });

  it('so the accomplice cannot approve a rotation: the quorum is still the custodians', async () => {
    const p = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 'rotate');
    assertError(await approve(api, mallory, p.id, p.params_sha256, mallory.token, true), 403, 'ERR_APPROVAL_NOT_APPROVER');
  });

  it('a group change approved by the custodians runs once, as the requester', async () => {
    const body = { policies: ['approvals-read'], members: ['alice', 'bob', 'carol', 'mallory'], external_groups: [] };
    const p = pending(await api.call(rita.token, 'PUT', '/v1/sys/groups/custodians', body), 'add mallory');
    assertOk(await approve(api, alice, p.id, p.params_sha256), 200, 'alice');
    assertOk(await approve(api, bob, p.id, p.params_sha256), 200, 'bob');
    assertOk(await api.call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/execute`), 200, 'execute');
    assert.deepEqual((await api.asRoot('GET', '/v1/sys/groups/custodians')).members, ['alice', 'bob', 'carol', 'mallory']);
  });

  it('a group no approval policy names changes at once', async () => {
    assertOk(await api.call(rita.token, 'PUT', '/v1/sys/groups/others', { policies: ['approvals-read'], members: ['mallory', 'carol'], external_groups: [] }), 200);
  });
});
