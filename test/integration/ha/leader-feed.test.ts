/**
 * The two PostgreSQL mechanisms replicas rely on, against a real PostgreSQL, in one process:
 * the advisory-lock leader election and the LISTEN/NOTIFY change feed. (The same through real
 * server processes, with kill -9, is in replicas.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { AdvisoryLockLeader } from '../../../src/ha/leader.js';
import { notifyChanges, PgChangeFeed } from '../../../src/storage/pg-change-feed.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { sleep } from '../../helpers/processes.js';
import { pollUntilUp } from '../../helpers/replicas.js';

let server: TestPostgres;
const clientFactory = () => (overrides: Partial<pg.ClientConfig>) => new pg.Client({ connectionString: server.url.replace('keyhold@', `keyhold:${server.password}@`), ...overrides });
const silent = () => undefined;

before(async () => {
  server = await startPostgres();
  const client = clientFactory()({});
  await client.connect();
  await client.query('CREATE TABLE kv (key text PRIMARY KEY, value text)');
  await client.end();
});
after(() => server.destroy());

test('one leader at a time; when its session dies another takes over within a few seconds', async () => {
  const leaders = [0, 1, 2].map(() => new AdvisoryLockLeader({ newClient: clientFactory(), warn: silent, pollIntervalMs: 200 }));
  try {
    for (const l of leaders) await l.start();
    const holding = () => leaders.filter((l) => l.isLeader);
    await pollUntilUp('a leader', 5000, async () => holding().length === 1);
    const first = holding()[0] as AdvisoryLockLeader;
    const changes: boolean[] = [];
    first.onChange((leader) => changes.push(leader));
    // The lock's session killed from outside (as when its process dies): the lock is free, and
    // the old holder notices its session is gone and steps down.
    await server.admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`keyhold-leader-${first.replicaId.slice(0, 8)}`]);
    const t0 = Date.now();
    await pollUntilUp('the old holder stepping down', 10_000, async () => changes.length > 0);
    assert.equal(changes[0], false);
    // Its process would be gone; here the object lives on and would compete for the free lock
    // again (and could win it back before the others' next try): take it out, as kill -9 would.
    await first.close();
    await pollUntilUp('another leader', 10_000, async () => holding().length === 1 && holding()[0] !== first);
    assert.ok(Date.now() - t0 < 10_000);
    // Never two at once, watched for a while.
    for (let i = 0; i < 20; i++) {
      assert.ok(holding().length <= 1, 'two leaders at once');
      await sleep(50);
    }
    // A clean close hands the lock on too.
    const second = holding()[0] as AdvisoryLockLeader;
    await second.close();
    await pollUntilUp('a third leader', 10_000, async () => holding().length === 1 && holding()[0] !== second);
  } finally {
    for (const l of leaders) await l.close();
  }
});

test('sync() delivers every change committed before it was called; own changes are skipped; rolled-back ones never arrive', async () => {
  const reader = new PgChangeFeed(clientFactory(), silent);
  const writerFeed = new PgChangeFeed(clientFactory(), silent);
  await reader.start();
  await writerFeed.start();
  const seen: Array<readonly string[] | 'all'> = [];
  reader.onChange((keys) => seen.push(keys));
  const ownSeen: unknown[] = [];
  writerFeed.onChange((keys) => ownSeen.push(keys));
  const writer = clientFactory()({});
  await writer.connect();
  try {
    const write = async (keys: string[], commit = true) => {
      await writer.query('BEGIN');
      for (const k of keys) await writer.query('INSERT INTO kv VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [k, 'v']);
      await notifyChanges(writer, writerFeed.sender, keys);
      await writer.query(commit ? 'COMMIT' : 'ROLLBACK');
    };
    seen.length = 0; // the 'all' of start-up
    for (let i = 0; i < 200; i++) {
      await write([`data/k${i}`, `data/other${i}`]);
      await reader.sync();
      // Acknowledged before sync() was called: delivered before it resolved, every time.
      assert.deepEqual(seen.at(-1), [`data/k${i}`, `data/other${i}`], `round ${i}`);
    }
    await write(['data/never'], false);
    await reader.sync();
    assert.ok(!seen.some((k) => k !== 'all' && k.includes('data/never')));
    await writerFeed.sync();
    assert.deepEqual(ownSeen.filter((k) => k !== 'all'), [], 'a feed does not report its own writes');
    // More keys than one notification holds: several notifications, every key delivered.
    seen.length = 0;
    const many = Array.from({ length: 400 }, (_, i) => `data/a-rather-long-key-name/${i}`);
    await write(many);
    await reader.sync();
    assert.ok(seen.length > 1 && !seen.includes('all'));
    assert.deepEqual(seen.flatMap((k) => k as string[]), many);
    // A key too long for any payload: 'all'.
    await writer.query('BEGIN');
    await notifyChanges(writer, writerFeed.sender, [`data/${'x'.repeat(8000)}`]);
    await writer.query('COMMIT');
    await reader.sync();
    assert.equal(seen.at(-1), 'all');
  } finally {
    await writer.end();
    await reader.close();
    await writerFeed.close();
  }
});

test('concurrent sync() calls share round trips, but none uses one that started before it', async () => {
  const feed = new PgChangeFeed(clientFactory(), silent);
  await feed.start();
  try {
    const before = feed.roundTrips;
    await Promise.all(Array.from({ length: 100 }, () => feed.sync()));
    // The first starts one; the other 99 arrive while it runs and share the next.
    assert.equal(feed.roundTrips - before, 2);
  } finally {
    await feed.close();
  }
});

test('a lost LISTEN connection: listeners get "all", sync() fails meanwhile, and the feed listens again by itself', async () => {
  const feed = new PgChangeFeed(clientFactory(), silent);
  await feed.start();
  const seen: Array<readonly string[] | 'all'> = [];
  feed.onChange((keys) => seen.push(keys));
  let stopped = false;
  try {
    server.stop('fast');
    stopped = true;
    await pollUntilUp('the loss noticed', 5000, async () => seen.includes('all'));
    await assert.rejects(feed.sync(), (err: { code?: string }) => err.code === 'ERR_STORAGE_UNAVAILABLE');
    seen.length = 0;
    server.start();
    stopped = false;
    await pollUntilUp('listening again', 10_000, async () => feed.sync().then(() => true, () => false));
    // Changes made while nobody listened are unknown: 'all' again once it listens.
    assert.ok(seen.includes('all'));
  } finally {
    if (stopped) server.start();
    await feed.close();
  }
});
