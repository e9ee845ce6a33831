/**
 * Groups, the conferral rule on them and on account administration, and the capabilities route,
 * against a real `keyhold dev` server. A non-root holder of write access to groups (or accounts)
 * must not be able to reach policies it does not hold through them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { createEnrolled, login, PASSWORD, totp } from './support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
/** A token of `policies`, made by root. */
const tokenOf = async (policies: string[]): Promise<string> => (await api.asRoot('POST', '/v1/tokens', { policies })).token as string;

let groupAdmin: string;
let accountAdmin: string;

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys', capabilities: ['list'] }, { path: 'keys/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/policies/secrets-ops', { rules: [{ path: 'secrets/ops/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/policies/group-admin', { rules: [{ path: 'sys/groups', capabilities: ['list'] }, { path: 'sys/groups/*', capabilities: ['read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/account-admin', { rules: [{ path: 'sys/operators', capabilities: ['list'] }, { path: 'sys/operators/*', capabilities: ['create', 'read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/admins', { policies: ['root'], members: ['alice'], external_groups: [] });
  groupAdmin = await tokenOf(['group-admin', 'keys-read']);
  accountAdmin = await tokenOf(['account-admin', 'keys-read']);
});
after(async () => {
  await server?.stop();
});

describe('groups', () => {
  it('a holder maps a group to policies it holds; the group reads back as written', async () => {
    const res = await api.call(groupAdmin, 'PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['bob', 'alice'], external_groups: ['Readers EU'] });
    assertOk(res, 200);
    assert.deepEqual(res.body, { name: 'readers', policies: ['keys-read'], members: ['alice', 'bob'], external_groups: ['Readers EU'] });
    const read = await api.call(groupAdmin, 'GET', '/v1/sys/groups/readers');
    assert.deepEqual(read.body, res.body);
    assert.deepEqual((await api.call(groupAdmin, 'GET', '/v1/sys/groups')).body.groups.sort(), ['admins', 'readers']);
  });

  it('a non-root holder cannot map a group to a policy it does not hold, nor to root', async () => {
    assertError(await api.call(groupAdmin, 'PUT', '/v1/sys/groups/sneaky', { policies: ['secrets-ops'], members: ['bob'], external_groups: [] }), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(groupAdmin, 'PUT', '/v1/sys/groups/sneaky', { policies: ['root'], members: ['bob'], external_groups: [] }), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(groupAdmin, 'PUT', '/v1/sys/groups/sneaky', { policies: ['keys-read', 'root'], members: [], external_groups: ['Everyone'] }), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(server.rootToken, 'GET', '/v1/sys/groups/sneaky'), 404, 'ERR_GROUP_NOT_FOUND', 'nothing was written');
  });

  it('a non-root holder cannot add members to a group whose policies it does not hold', async () => {
    assertError(await api.call(groupAdmin, 'PUT', '/v1/sys/groups/admins', { policies: ['root'], members: ['alice', 'mallory'], external_groups: [] }), 403, 'ERR_PERMISSION_DENIED');
    assert.deepEqual((await api.asRoot('GET', '/v1/sys/groups/admins')).members, ['alice']);
  });

  it('needs the capability on sys/groups/<name>', async () => {
    const reader = await tokenOf(['keys-read']);
    assertError(await api.call(reader, 'PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: [], external_groups: [] }), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(reader, 'GET', '/v1/sys/groups'), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(reader, 'DELETE', '/v1/sys/groups/readers'), 403, 'ERR_PERMISSION_DENIED');
  });

  it('deletes', async () => {
    assertOk(await api.call(groupAdmin, 'PUT', '/v1/sys/groups/temp', { policies: [], members: [], external_groups: [] }), 200);
    assertOk(await api.call(groupAdmin, 'DELETE', '/v1/sys/groups/temp'), 204);
    assertError(await api.call(groupAdmin, 'DELETE', '/v1/sys/groups/temp'), 404, 'ERR_GROUP_NOT_FOUND');
  });
});

describe('account administration follows the conferral rule', () => {
  it('a non-root account admin creates an account no group names yet', async () => {
    assertOk(await api.call(accountAdmin, 'POST', '/v1/sys/operators', { name: 'newbie', password: PASSWORD }), 200);
  });

  it('cannot create or reset an account that a group of policies it does not hold names', async () => {
    assertError(await api.call(accountAdmin, 'POST', '/v1/sys/operators', { name: 'alice', password: PASSWORD }), 403, 'ERR_PERMISSION_DENIED', 'alice is in admins (root)');
    await api.asRoot('POST', '/v1/sys/operators', { name: 'alice', password: PASSWORD });
    assertError(await api.call(accountAdmin, 'POST', '/v1/sys/operators/alice/reset', { password: 'a password of mine' }), 403, 'ERR_PERMISSION_DENIED');
    assertOk(await api.call(accountAdmin, 'POST', '/v1/sys/operators/newbie/reset', { password: 'a password of mine' }), 200);
  });

  it('needs the capability on sys/operators/<name>', async () => {
    const reader = await tokenOf(['keys-read']);
    assertError(await api.call(reader, 'POST', '/v1/sys/operators', { name: 'zed', password: PASSWORD }), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(reader, 'GET', '/v1/sys/operators'), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(reader, 'GET', '/v1/sys/operators/newbie'), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(reader, 'DELETE', '/v1/sys/operators/newbie'), 403, 'ERR_PERMISSION_DENIED');
  });
});

describe('GET /v1/sys/capabilities', () => {
  it('answers an operator\'s own capabilities, policies and identity', async () => {
    await api.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['bob'], external_groups: [] });
    const bob = await createEnrolled(api, 'bob');
    const session = await login(api, { username: 'bob', password: PASSWORD, totp: await totp(bob.secret) });
    assertOk(session, 200);
    const token = session.body.token as string;
    const keys = await api.call(token, 'GET', '/v1/sys/capabilities?path=keys/payments');
    assertOk(keys, 200);
    assert.deepEqual(keys.body, { path: 'keys/payments', capabilities: ['read'], policies: ['keys-read'], identity: { person: 'operator:bob', selectors: ['operator:bob'], display_name: 'operator:bob' } });
    assert.deepEqual((await api.call(token, 'GET', '/v1/sys/capabilities?path=secrets/ops/db')).body.capabilities, []);
    assert.deepEqual((await api.call(token, 'GET', '/v1/sys/capabilities?path=keys')).body.capabilities, ['list']);
  });

  it('answers root everything, and a machine token no person', async () => {
    const res = await api.asRoot('GET', '/v1/sys/capabilities?path=secrets/anything');
    assert.deepEqual(res.capabilities, ['read', 'create', 'update', 'delete', 'list', 'encrypt', 'decrypt', 'sign', 'verify', 'rotate']);
    assert.equal(res.identity.person, undefined);
    assert.deepEqual(res.policies, ['root']);
  });

  it('needs a token, and a well-formed path', async () => {
    assertError(await api.call(undefined, 'GET', '/v1/sys/capabilities?path=keys/x'), 401, 'ERR_UNAUTHENTICATED');
    for (const q of ['', '?path=', '?path=../keys', '?path=keys/../x', '?path=/keys', '?path=keys//x', '?path=keys&other=1', `?path=${'a'.repeat(600)}`, '?path=keys%00']) {
      assertError(await api.call(server.rootToken, 'GET', `/v1/sys/capabilities${q}`), 400, 'ERR_BAD_REQUEST', q);
    }
  });
});
