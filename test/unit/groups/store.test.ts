/** Groups (src/groups/store.ts) on a real barrier over SQLite. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../src/errors.js';
import { GroupStore } from '../../../src/groups/store.js';
import { personOf, operatorOf } from '../../../src/identity/person.js';
import { sqliteFile } from '../barrier/support.js';

describe('groups', () => {
  const groups = new GroupStore(new Barrier(sqliteFile('groups').open(), randomBytes(32)).view(MOUNTS.groups));

  it('give a person the union of the policies of the groups naming them', async () => {
    await groups.put({ name: 'ops', policies: ['read-keys', 'rotate'], members: ['alice', 'bob'], externalGroups: ['sso-ops'] });
    await groups.put({ name: 'audit', policies: ['audit', 'read-keys'], members: ['carol'], externalGroups: ['Auditors EU'] });
    assert.deepEqual(await groups.policiesFor({ operator: 'alice' }), { groups: ['ops'], policies: ['read-keys', 'rotate'] });
    assert.deepEqual(await groups.policiesFor({ externalGroups: ['Auditors EU', 'sso-ops'] }), { groups: ['audit', 'ops'], policies: ['audit', 'read-keys', 'rotate'] });
    assert.deepEqual(await groups.policiesFor({ operator: 'carol', externalGroups: ['nothing'] }), { groups: ['audit'], policies: ['audit', 'read-keys'] });
    assert.deepEqual(await groups.policiesFor({ operator: 'zed' }), { groups: [], policies: [] });
    assert.deepEqual(await groups.policiesFor({}), { groups: [], policies: [] });
  });

  it('name their members; a missing group has none', async () => {
    assert.deepEqual(await groups.membersOf('ops'), ['alice', 'bob']);
    assert.deepEqual(await groups.membersOf('missing'), []);
    assert.deepEqual(await groups.membersOf('../ops'), []);
  });

  it('refuse malformed names and lists; list, get, delete', async () => {
    const bad = (e: unknown) => isKeyholdError(e, 'ERR_BAD_REQUEST');
    await assert.rejects(groups.put({ name: 'Ops', policies: [], members: [], externalGroups: [] }), bad);
    await assert.rejects(groups.put({ name: 'x', policies: ['Root'], members: [], externalGroups: [] }), bad);
    await assert.rejects(groups.put({ name: 'x', policies: [], members: ['A'], externalGroups: [] }), bad);
    await assert.rejects(groups.put({ name: 'x', policies: [], members: [], externalGroups: ['a/b'] }), bad);
    assert.deepEqual((await groups.list()).sort(), ['audit', 'ops']);
    assert.equal((await groups.get('ops')).name, 'ops');
    await groups.delete('audit');
    await assert.rejects(groups.get('audit'), (e) => isKeyholdError(e, 'ERR_GROUP_NOT_FOUND'));
  });
});

describe('personOf', () => {
  it('names the person behind a token: the operator first, then the SSO subject, else null', () => {
    assert.equal(personOf({ selectors: ['operator:alice'] }), 'operator:alice');
    assert.equal(personOf({ selectors: ['oidc:abc', 'operator:alice'] }), 'operator:alice');
    assert.equal(personOf({ selectors: ['oidc:abc'] }), 'oidc:abc');
    assert.equal(personOf({ selectors: ['k8s:ns:app', 'k8s:sa:app/web'] }), null);
    assert.equal(personOf({ selectors: ['operator:'] }), null);
    assert.equal(personOf({}), null);
    assert.equal(operatorOf({ selectors: ['oidc:abc', 'operator:alice'] }), 'alice');
    assert.equal(operatorOf({ selectors: ['oidc:abc'] }), null);
  });
});
