/**
 * Red team, quorum approval vs the approvers' operator accounts. A reset sets an account's
 * password and clears its second factor; deleting an account and creating one with the same name
 * makes a new person the group already names. Either way whoever may change accounts becomes an
 * approver. So a change to the account of a member of a policy's group needs that policy's
 * quorum, whether or not the policy lists `operator-changes`.
 * Real `keyhold dev` server, real operator accounts enrolled with TOTP (otplib).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertOk } from '../api/api-helpers.js';
import { approve, createPerson, pending, type Person } from '../approvals/support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person; // requester, who may also administer operator accounts
let alice: Person;

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'create', 'update', 'rotate', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/accounts-admin', { rules: [{ path: 'sys/operators', capabilities: ['list'] }, { path: 'sys/operators/*', capabilities: ['create', 'read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'accounts-admin', 'approvals-read'], members: ['rita'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob', 'carol', 'zed'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  alice = await createPerson(api, 'alice');
  await createPerson(api, 'bob');
  await createPerson(api, 'carol');
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/pay-keys', { operations: ['key-rotate'], paths: ['keys/pay*'], group: 'custodians', required: 2 });
});

after(async () => {
  await server?.stop();
});

describe('the accounts of a policy group\'s members are protected by that policy', () => {
  it('resetting an approver\'s account needs the policy\'s quorum (202)', async () => {
    const p = pending(await api.call(rita.token, 'POST', '/v1/sys/operators/alice/reset', { password: 'a new password nobody else knows' }), 'reset alice');
    assert.deepEqual(p.rules.map((r) => r.policy), ['pay-keys']);
    // alice's account is untouched: her password and second factor still work.
    assertOk(await approve(api, alice, p.id, p.params_sha256), 200, 'alice can still approve');
  });

  it('deleting an approver\'s account needs it too (a new account of that name would be an approver)', async () => {
    pending(await api.call(rita.token, 'DELETE', '/v1/sys/operators/bob'), 'delete bob');
    await api.asRoot('GET', '/v1/sys/operators/bob');
  });

  it('creating an account with a name the group already names (zed, no account yet) needs it too', async () => {
    pending(await api.call(rita.token, 'POST', '/v1/sys/operators', { name: 'zed', password: 'correct horse battery staple 3' }), 'create zed');
    await api.asRoot('GET', '/v1/sys/operators/zed', undefined, 404);
  });

  it('an account no policy group names changes at once', async () => {
    assertOk(await api.call(rita.token, 'POST', '/v1/sys/operators', { name: 'newbie', password: 'correct horse battery staple 2' }), 200);
  });
});
