/**
 * Barrier views (src/barrier/view.ts): a domain holding its view names records relative to its
 * prefix and cannot reach another domain's records. Real SQLite under a real barrier.
 */
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS, policyPath, type Mount } from '../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../src/errors.js';
import { MAX_SECRET_PATH_LENGTH, secretPolicyPath } from '../../../src/secrets/types.js';
import { sqliteFile } from './support.js';

const badRequest = (err: unknown) => isKeyholdError(err, 'ERR_BAD_REQUEST');

describe('a barrier view', () => {
  const file = sqliteFile('views');
  const storage = file.open();
  const barrier = new Barrier(storage, randomBytes(32));
  const keys = barrier.view(MOUNTS.keys);
  const secrets = barrier.view(MOUNTS.secrets);

  it('stores under its prefix, with keys relative to it', async () => {
    await keys.put('app', { k: 1 });
    assert.deepEqual(await barrier.getJson('keys/app'), { k: 1 });
    assert.ok(await storage.get('data/keys/app'));
    assert.deepEqual(await keys.get('app'), { k: 1 });
    assert.equal((await keys.read('app')).path, 'keys/app', 'a read names the full path (commits check it)');
    assert.equal(keys.write('a/b', 1).path, 'keys/a/b');
    assert.equal(keys.own('keys/a/b'), 'a/b');
    assert.equal(keys.own('secrets/meta/x'), undefined);
    assert.equal(keys.own('keys/../secrets/x'), undefined);
    assert.equal(keys.own('keysx/y'), undefined);
  });

  it('lists only its own records, relative to itself', async () => {
    await secrets.put('meta/s1', { s: 1 });
    await secrets.put('data/s1/1', { s: 1 });
    await keys.put('other', {});
    assert.deepEqual((await secrets.list()).sort(), ['data/s1/1', 'meta/s1']);
    assert.deepEqual(await secrets.list('meta/'), ['meta/s1']);
    assert.ok(!(await keys.list()).some((k) => k.includes('s1')));
  });

  it('refuses every key that would leave its prefix or is not one record, on every entry point', async () => {
    await barrier.putJson('secrets/meta/target', { stolen: false });
    await secrets.cached('meta/target'); // cached: even a peek must not reach it from the keys view
    const escapes = ['', '.', '..', '../secrets/meta/target', 'a/../../secrets/meta/target', '/secrets/meta/target', 'a//b', 'a/', './a', 'a/./b', 'a\\..\\b', '%2e%2e', 'a b', 'x'.repeat(600)];
    for (const key of escapes) {
      const what = JSON.stringify(key.slice(0, 30));
      await assert.rejects(keys.read(key), badRequest, `read ${what}`);
      await assert.rejects(keys.get(key), badRequest, `get ${what}`);
      await assert.rejects(keys.cached(key), badRequest, `cached ${what}`);
      await assert.rejects(keys.put(key, 1), badRequest, `put ${what}`);
      await assert.rejects(keys.delete(key), badRequest, `delete ${what}`);
      await assert.rejects(keys.update(key, () => ({ writes: [], result: null })), badRequest, `update ${what}`);
      assert.throws(() => keys.write(key, 1), badRequest, `write ${what}`);
      assert.throws(() => keys.remove(key), badRequest, `remove ${what}`);
      assert.equal(keys.peek(key), undefined, `peek ${what}`);
      if (key !== '') await assert.rejects(keys.list(`${key}/`), badRequest, `list ${what}`);
    }
    assert.deepEqual(await barrier.getJson('secrets/meta/target'), { stolen: false });
    // The whole path must fit the barrier's limit, prefix included.
    const longest = 'y'.repeat(512 - 'keys/'.length);
    await keys.put(longest, 1);
    await assert.rejects(keys.put(`${longest}y`, 1), badRequest);
  });

  it('cannot be made over a prefix that is not a logical path prefix', () => {
    for (const storagePrefix of ['', 'keys', '/keys/', 'keys//', '../x/', 'a/../b/']) {
      assert.throws(() => barrier.view({ storage: storagePrefix, policy: 'x' } satisfies Mount), (err: unknown) => isKeyholdError(err), storagePrefix);
    }
  });
});

describe('the mounts: one mapping from domain to storage prefix and policy path', () => {
  it('gives the policy paths routes have always used', () => {
    assert.equal(policyPath(MOUNTS.keys), 'keys');
    assert.equal(policyPath(MOUNTS.keys, 'prod'), 'keys/prod');
    assert.equal(secretPolicyPath('team/db'), 'secrets/team/db');
    assert.equal(policyPath(MOUNTS.policies, 'ops'), 'sys/policies/ops');
    assert.equal(policyPath(MOUNTS.kubernetes, 'roles/web'), 'sys/auth/kubernetes/roles/web');
    assert.equal(policyPath(MOUNTS.tokenAccessors, 'kha.x'), 'sys/tokens/accessors/kha.x');
    assert.equal(policyPath(MOUNTS.audit), 'sys/audit');
    assert.equal(MAX_SECRET_PATH_LENGTH, 489, 'the deepest secret record still fits');
  });

  it('keeps the storage prefixes of existing stores, and no two domains share records', () => {
    const prefixes = Object.entries(MOUNTS).map(([name, m]) => [name, m.storage] as const);
    assert.deepEqual(Object.fromEntries(prefixes), {
      keys: 'keys/', secrets: 'secrets/', policies: 'sys/policies/', audit: 'sys/audit/', kubernetes: 'auth/kubernetes/', oidc: 'auth/oidc/',
      tokens: 'sys/tokens/', tokenAccessors: 'sys/token-accessors/', tokenChildren: 'sys/token-children/', tokenExpiry: 'sys/token-expiry/',
      podTokens: 'auth/kubernetes/pod-tokens/', seal: 'sys/seal/',
      approvalPolicies: 'sys/approval-policies/', approvals: 'sys/approvals/', operators: 'sys/operators/', operatorTokens: 'sys/operator-tokens/', groups: 'sys/groups/',
    });
    // The only nesting: a pod's token index, inside the Kubernetes mount and shared with the token store.
    for (const [a, pa] of prefixes) for (const [b, pb] of prefixes) {
      if (a !== b && pb.startsWith(pa)) assert.deepEqual([a, b], ['kubernetes', 'podTokens']);
    }
  });
});
