import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { TokenStore } from '../../../src/identity/tokens.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { code } from './support.js';
import { tempDir } from '../../helpers/temp.js';

describe('token expiry sweep', () => {
  const storage = SqliteStorage.open(path.join(tempDir('keyhold-tokens-'), 'store.db'));
  const barrier = new Barrier(storage, randomBytes(32));
  after(() => storage.close());

  it('deletes expired tokens and what was written with them, oldest first, and nothing live', async () => {
    const tokens = new TokenStore(barrier);
    const now = Date.now();
    const root = await tokens.create({ policies: ['root'], neverExpires: true });
    const live = await tokens.create({ policies: ['p'], ttlSeconds: 3600 });
    const short = await tokens.create({ policies: ['p'], ttlSeconds: 10 }, (r) => [{ path: `auth/test-index/pod-1/${r.id}`, value: { at: r.createdAt } }]);
    const shorter = await tokens.create({ policies: ['p'], ttlSeconds: 5 });
    assert.equal((await tokens.lookup(short.token)).id, short.record.id);

    // Nothing has expired yet.
    assert.equal(await tokens.sweepExpired(now), 0);
    // 11 s later: the two short tokens, the older expiry first; a limit stops the sweep early.
    assert.equal(await tokens.sweepExpired(now + 11_000, 1), 1);
    assert.equal(await barrier.getJson(`sys/tokens/${shorter.record.id}`), null);
    assert.ok(await barrier.getJson(`sys/tokens/${short.record.id}`));
    assert.equal(await tokens.sweepExpired(now + 11_000), 1);
    assert.equal(await barrier.getJson(`sys/tokens/${short.record.id}`), null);
    assert.equal(await barrier.getJson(`auth/test-index/pod-1/${short.record.id}`), null, 'written with the token, deleted with it');
    await assert.rejects(tokens.lookup(short.token), code('ERR_UNAUTHENTICATED'));
    // What remains: the root token (no TTL), the live one, and the live one's expiry entry.
    assert.equal((await tokens.lookup(root.token)).id, root.record.id);
    assert.equal((await tokens.lookup(live.token)).id, live.record.id);
    assert.equal((await barrier.list('sys/token-expiry/')).length, 1);
    assert.equal(await tokens.sweepExpired(now + 11_000), 0);
  });

  it('a revoked token\'s expiry entry is swept without complaint', async () => {
    const tokens = new TokenStore(barrier);
    const before = (await barrier.list('sys/token-expiry/')).length;
    const t = await tokens.create({ policies: ['p'], ttlSeconds: 1 });
    await tokens.revoke(t.record.id);
    // Revocation takes the expiry entry with it: nothing is left for the sweep.
    assert.equal((await barrier.list('sys/token-expiry/')).length, before);
    assert.equal(await tokens.sweepExpired(Date.now() + 2000), 0);
  });
});

describe('token tree, accessors and limits (issue 9)', () => {
  const storage = SqliteStorage.open(path.join(tempDir('keyhold-token-tree-'), 'store.db'));
  const barrier = new Barrier(storage, randomBytes(32));
  after(() => storage.close());
  /** Every record under the token prefixes: what revocation and the sweep must leave empty. */
  const tokenRecords = async () => (await Promise.all(['sys/tokens/', 'sys/token-accessors/', 'sys/token-children/', 'sys/token-expiry/'].map((p) => barrier.list(p)))).flat();

  it('revoking a token revokes its whole tree, indexes included, and the cache serves none of it', async () => {
    const tokens = new TokenStore(barrier);
    const before = await tokenRecords();
    const parent = await tokens.create({ policies: ['p'], ttlSeconds: 3600 });
    const child = await tokens.create({ policies: ['p'], parent: parent.record });
    const grandchild = await tokens.create({ policies: ['p'], parent: child.record });
    const sibling = await tokens.create({ policies: ['p'], parent: parent.record });
    for (const t of [parent, child, grandchild, sibling]) assert.equal((await tokens.lookup(t.token)).id, t.record.id); // all cached now
    assert.equal(child.record.parentAccessor, parent.record.accessor);
    assert.equal((await tokens.lookupAccessor(grandchild.record.accessor as string)).id, grandchild.record.id);
    assert.equal(await tokens.revoke(parent.record.id), 4);
    for (const t of [parent, child, grandchild, sibling]) {
      assert.equal(tokens.cached(t.token), undefined);
      await assert.rejects(tokens.lookup(t.token), code('ERR_UNAUTHENTICATED'));
      await assert.rejects(tokens.lookupAccessor(t.record.accessor as string), code('ERR_TOKEN_NOT_FOUND'));
    }
    assert.deepEqual((await tokenRecords()).sort(), before.sort(), 'no record of the tree is left');
  });

  it('a child never outlives its parent, and nothing outlives the server maximum', async () => {
    const tokens = new TokenStore(barrier, { maxTtlSeconds: 600 });
    const parent = await tokens.create({ policies: ['p'], ttlSeconds: 30 });
    const parentExpiry = Date.parse(parent.record.expiresAt as string);
    for (const ttlSeconds of [undefined, 29, 31, 365 * 86400]) {
      const child = await tokens.create({ policies: ['p'], parent: parent.record, ...(ttlSeconds ? { ttlSeconds } : {}) });
      assert.ok(Date.parse(child.record.expiresAt as string) <= parentExpiry, `ttl ${ttlSeconds}: ${child.record.expiresAt} > ${parent.record.expiresAt}`);
    }
    const orphan = await tokens.create({ policies: ['root'] });
    const lifetime = Date.parse(orphan.record.expiresAt as string) - Date.parse(orphan.record.createdAt);
    assert.equal(lifetime, 600_000, 'no ttl: the server maximum, even for root');
  });

  it('the sweep removes expired tokens with their accessor and child indexes', async () => {
    const tokens = new TokenStore(barrier);
    const before = await tokenRecords();
    const parent = await tokens.create({ policies: ['p'], ttlSeconds: 5 });
    await tokens.create({ policies: ['p'], parent: parent.record });
    assert.equal(await tokens.sweepExpired(Date.now() + 10_000), 2);
    assert.deepEqual((await tokenRecords()).sort(), before.sort());
  });

  it('a child created while its parent is revoked never survives it', async () => {
    const tokens = new TokenStore(barrier);
    for (let round = 0; round < 25; round++) {
      const parent = await tokens.create({ policies: ['p'], ttlSeconds: 3600 });
      // Creations spread over a few ms and the revocation started among them, at a different point each round.
      const children = Array.from({ length: 6 }, (_, i) => sleep(i * 2).then(() => tokens.create({ policies: ['p'], parent: parent.record })).then((c) => c.token, () => undefined));
      const [made] = await Promise.all([Promise.all(children), sleep(1 + (round % 8)).then(() => tokens.revoke(parent.record.id))]);
      for (const token of made) if (token) await assert.rejects(tokens.lookup(token), code('ERR_UNAUTHENTICATED'), `round ${round}: a child survived`);
      assert.deepEqual(await barrier.list(`sys/token-children/${parent.record.id}/`), []);
    }
  });

  it('a token stored before accessors existed gets one at its first look-up, indexed and swept with it', async () => {
    const tokens = new TokenStore(barrier);
    const old = await tokens.create({ policies: ['p'], ttlSeconds: 60 });
    // Rewrite it as an older version stored it: no accessor, no index, an expiry record naming only the token.
    const { accessor: _dropped, ...legacy } = old.record;
    const expiry = `sys/token-expiry/${String(Date.parse(old.record.expiresAt as string)).padStart(15, '0')}/${old.record.id}`;
    await barrier.commit([], [{ path: `sys/tokens/${old.record.id}`, value: legacy }, { path: `sys/token-accessors/${old.record.accessor}`, delete: true }, { path: expiry, value: { paths: [`sys/tokens/${old.record.id}`] } }]);
    const fresh = new TokenStore(barrier); // an empty cache, as after a restart
    const record = await fresh.lookup(old.token);
    assert.match(record.accessor ?? '', /^kha\.[A-Za-z0-9_-]{32}$/);
    assert.equal((await fresh.lookupAccessor(record.accessor as string)).id, old.record.id);
    assert.equal((await new TokenStore(barrier).lookup(old.token)).accessor, record.accessor, 'stored, not made up per look-up');
    assert.deepEqual(await barrier.getJson(expiry), { paths: [`sys/tokens/${old.record.id}`, `sys/token-accessors/${record.accessor}`] });
  });
});
