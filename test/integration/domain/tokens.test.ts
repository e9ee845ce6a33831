import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { TokenStore } from '../../../src/identity/tokens.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { code, tempDir } from './support.js';

describe('token expiry sweep', () => {
  const storage = SqliteStorage.open(path.join(tempDir('tokens'), 'store.db'));
  const barrier = new Barrier(storage, randomBytes(32));
  after(() => storage.close());

  it('deletes expired tokens and what was written with them, oldest first, and nothing live', async () => {
    const tokens = new TokenStore(barrier);
    const now = Date.now();
    const root = await tokens.create({ policies: ['root'] });
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
    assert.equal((await barrier.list('sys/token-expiry/')).length, before + 1);
    assert.equal(await tokens.sweepExpired(Date.now() + 2000), 1);
    assert.equal((await barrier.list('sys/token-expiry/')).length, before);
  });
});
