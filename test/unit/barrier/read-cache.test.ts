/**
 * The one read cache (src/barrier/read-cache.ts): hits without storage, eviction by every write,
 * no caching of a load a write overlapped, and the change feed of a shared store (evict on
 * onChange, sync before a hit, 'all' drops everything). Real SQLite; the feed between two
 * connections is test-driven (see TestFeedBus: no shared store exists in this branch yet).
 */
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { ReadCache } from '../../../src/barrier/read-cache.js';
import { sqliteFile, TestFeed, TestFeedBus } from './support.js';

/** A promise the test resolves. */
function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('the read cache on its own', () => {
  it('caches a load, and not a load that an eviction of its path overlapped', async () => {
    const cache = new ReadCache(undefined, () => undefined);
    assert.equal(await cache.get('a', async () => 'one'), 'one');
    assert.equal(cache.peek('a'), 'one');
    assert.equal(await cache.get('a', async () => 'never loaded'), 'one');

    const slow = deferred<string>();
    const reading = cache.get('b', () => slow.promise);
    cache.evict('b'); // a write of b committed while the load was in flight
    slow.resolve('old b');
    assert.equal(await reading, 'old b', 'the caller still gets what it read');
    assert.equal(cache.peek('b'), undefined, 'but it is not kept');

    // An eviction of another path does not spoil the load.
    const other = deferred<string>();
    const readingC = cache.get('c', () => other.promise);
    cache.evict('zzz');
    other.resolve('c');
    await readingC;
    assert.equal(cache.peek('c'), 'c');

    // Clearing spoils every load in flight.
    const d = deferred<string>();
    const readingD = cache.get('d', () => d.promise);
    cache.clear();
    d.resolve('d');
    await readingD;
    assert.equal(cache.peek('d'), undefined);
  });

  it('keeps absences only when asked, and stays within its bound (oldest out first)', async () => {
    const cache = new ReadCache(undefined, () => undefined, 3);
    assert.equal(await cache.get('none', async () => null), null);
    assert.equal(cache.peek('none'), undefined, 'a random miss is not kept');
    assert.equal(await cache.get('gone', async () => null, true), null);
    assert.equal(cache.peek('gone'), null, 'a kept absence');
    for (const k of ['k1', 'k2', 'k3']) await cache.get(k, async () => k);
    assert.equal(cache.size, 3);
    assert.equal(cache.peek('gone'), undefined, 'the oldest entry made room');
    assert.equal(cache.peek('k3'), 'k3');
  });

  it('with a feed: never answers synchronously, syncs before a hit, and evicts what the feed reports', async () => {
    const feed = new TestFeed();
    const cache = new ReadCache(feed, (key) => (key.startsWith('data/') ? key.slice(5) : undefined));
    assert.equal(feed.listeners, 1);
    await cache.get('x', async () => 'x1');
    assert.equal(cache.peek('x'), undefined, 'a shared store: only an awaited read may answer');
    const before = feed.syncs;
    assert.equal(await cache.get('x', async () => 'not loaded'), 'x1');
    assert.equal(feed.syncs, before + 1, 'the hit waited for the feed');
    feed.queue(['core/seal']); // outside the barrier: nothing to evict
    feed.queue(['data/x']);
    assert.equal(await cache.get('x', async () => 'x2'), 'x2', 'a change queued before the read was applied before answering');
    cache.close();
    assert.equal(feed.listeners, 0, 'closing stops listening');
  });
});

describe('the barrier\'s cache, through views, over real SQLite', () => {
  it('serves hits from memory and every write through any view evicts', async () => {
    const file = sqliteFile('cache-views');
    const rootKey = randomBytes(32);
    const barrier = new Barrier(file.open(), rootKey);
    const keys = barrier.view(MOUNTS.keys);
    await keys.put('k', { v: 1 });
    assert.deepEqual(await keys.cached('k'), { v: 1 });
    assert.deepEqual(keys.peek('k'), { v: 1 });

    // Another connection (one that bypasses this barrier) changes the record: without a feed, the
    // store is this process's alone, so the cached copy is served (no storage read on a hit).
    await new Barrier(file.open(), rootKey).putJson('keys/k', { v: 2 });
    assert.deepEqual(await keys.cached('k'), { v: 1 });

    // A write through any path of this barrier evicts: a view, a commit, the barrier itself.
    await barrier.putJson('keys/k', { v: 3 });
    assert.equal(keys.peek('k'), undefined);
    assert.deepEqual(await keys.cached('k'), { v: 3 });
    await keys.commit([], [keys.write('k', { v: 4 })]);
    assert.deepEqual(await keys.cached('k'), { v: 4 });
    await keys.update<{ v: number }, void>('k', (current) => ({ writes: [keys.write('k', { v: (current?.v ?? 0) + 1 })], result: undefined }));
    assert.deepEqual(await keys.cached('k'), { v: 5 });
    await keys.delete('k');
    assert.equal(await keys.cached('k'), null);

    // Sealing drops every decrypted record.
    await keys.cached('k');
    await keys.put('k2', { secret: true });
    await keys.cached('k2');
    assert.ok(barrier.cache.size > 0);
    barrier.seal();
    assert.equal(barrier.cache.size, 0);
    await assert.rejects(keys.cached('k2'), (err: Error & { code?: string }) => err.code === 'ERR_SEALED');
  });

  it('two replicas on a shared store: a write acknowledged on one is read on the other at once', async () => {
    const file = sqliteFile('cache-feed');
    const rootKey = randomBytes(32);
    const bus = new TestFeedBus();
    const a = bus.replica(file.open());
    const b = bus.replica(file.open());
    const viewA = new Barrier(a.storage, rootKey).view(MOUNTS.secrets);
    const viewB = new Barrier(b.storage, rootKey).view(MOUNTS.secrets);

    await viewA.put('meta/app', { v: 1 });
    assert.deepEqual(await viewB.cached('meta/app'), { v: 1 });
    assert.deepEqual(await viewA.cached('meta/app'), { v: 1 });

    // B's write is acknowledged; A has not been told yet (no notification delivered). A read on A
    // that starts now must still see it: the hit waits for A's feed to sync.
    await viewB.put('meta/app', { v: 2 });
    assert.equal(viewA.peek('meta/app'), undefined, 'no synchronous answer on a shared store');
    assert.deepEqual(await viewA.cached('meta/app'), { v: 2 });

    // A notification that arrives on its own evicts too.
    await viewB.put('meta/app', { v: 3 });
    a.feed.deliver();
    assert.deepEqual(await viewA.cached('meta/app'), { v: 3 });

    // A lost connection ('all'): everything goes, whatever was missed.
    await viewA.cached('meta/other');
    await new Barrier(file.open(), rootKey).putJson('secrets/meta/app', { v: 4 }); // a write no feed reported
    a.feed.lost();
    assert.deepEqual(await viewA.cached('meta/app'), { v: 4 });
  });
});
