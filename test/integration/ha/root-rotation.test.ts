/**
 * Root-key rotation with three real `keyhold server` replicas on one PostgreSQL: rotated on a
 * replica that does not lead, every replica learns the new root key from the seal record through
 * the change feed, so their writes after it are under the new generation; the rewrite runs on the
 * leader only; it ends with no record under the old generation in the database, and a replica
 * restarted afterwards unseals and reads everything with the new key alone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DATA_PREFIX } from '../../../src/barrier/barrier.js';
import { recordGeneration } from '../../../src/barrier/record.js';
import { inParallel } from '../../helpers/pool.js';
import { call } from '../../helpers/server.js';
import { pollUntilUp, startReplicas, type Replica, type ReplicaSet } from '../../helpers/replicas.js';

describe('root-key rotation with three replicas on one PostgreSQL', { timeout: 10 * 60_000 }, () => {
  let set: ReplicaSet;
  let root: string;
  let leader: Replica;
  const on = (r: Replica, method: string, path: string, body?: unknown) => call(r.address, method, path, root, body);

  /** Generation of every barrier record in the database, read raw. */
  async function storedGenerations(): Promise<Map<string, number>> {
    const rows = (await set.pg.admin('SELECT key, value FROM kv WHERE key >= $1 AND key < $2', [Buffer.from(DATA_PREFIX), Buffer.from('data0')])).rows as Array<{ key: Buffer; value: Buffer }>;
    return new Map(rows.map((r) => {
      const key = r.key.toString('utf8');
      return [key, recordGeneration(key.slice(DATA_PREFIX.length), r.value)];
    }));
  }

  const rewrittenMetric = async (r: Replica) => Number(/^keyhold_root_rotation_records_rewritten_total (\d+)$/m.exec((await call(r.address, 'GET', '/metrics')).text)?.[1]);

  before(async () => {
    // The final pass waits 1.5 s after the rotation: replicas learn the new key well within it.
    set = await startReplicas(3, { rootRotation: { batchSize: 20, pauseMs: 20, settleMs: 1_500 } });
    root = set.rootToken;
    await pollUntilUp('one leader', 15_000, async () => (await set.leader()) !== undefined);
    leader = await set.leader() as Replica;
  });
  after(async () => set?.destroy());

  it('rotated on a follower: every replica switches, and writes on each land under the new generation', async () => {
    await inParallel(Array.from({ length: 150 }, (_, i) => i), 12, async (i) => {
      const r = await on(set.replicas[i % 3] as Replica, 'PUT', `/v1/secrets/pre/s-${i}`, { data: { i: String(i) } });
      assert.equal(r.status, 200, r.text);
    });
    assert.ok([...(await storedGenerations()).values()].every((g) => g === 1));
    const follower = set.replicas.find((r) => r !== leader) as Replica;
    const rotated = await on(follower, 'POST', '/v1/sys/seal/rotate-root');
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(rotated.body.generation, 2);
    // Each replica learns the new root key from the seal record (change feed), without a restart.
    await pollUntilUp('every replica on generation 2', 10_000, async () => {
      for (const r of set.replicas) if ((await call(r.address, 'GET', '/v1/sys/health')).body?.root_key?.generation !== 2) return false;
      return true;
    });
    for (const r of set.replicas) {
      const w = await on(r, 'PUT', `/v1/secrets/post/from-${r.index}`, { data: { from: String(r.index) } });
      assert.equal(w.status, 200, w.text);
    }
    const generations = await storedGenerations();
    const post = [...generations].filter(([k]) => k.includes('post/from-'));
    assert.ok(post.length >= 3, JSON.stringify(post));
    assert.deepEqual(post.filter(([, g]) => g !== 2), [], 'writes after the rotation under generation 2, on every replica');
    // A second rotation is refused while this one rewrites, on any replica.
    const again = await on(leader, 'POST', '/v1/sys/seal/rotate-root');
    if (again.status !== 409) assert.fail(`expected 409 while rewriting, got ${again.status} ${again.text}`);
    assert.equal(again.body.error.code, 'ERR_ROTATION_IN_PROGRESS');
  });

  it('the rewrite runs on the leader only and ends with no record under the old generation', async () => {
    await pollUntilUp('the rewrite finished', 120_000, async () => (await on(leader, 'GET', '/v1/sys/seal/rotation')).body?.rewriting === false, 200);
    const status = (await on(leader, 'GET', '/v1/sys/seal/rotation')).body;
    assert.ok(status.finished_at && status.rewritten > 150, JSON.stringify(status));
    for (const r of set.replicas) {
      const n = await rewrittenMetric(r);
      if (r === leader) assert.ok(n > 150, `the leader rewrote ${n}`);
      else assert.equal(n, 0, `replica ${r.index} rewrote records`);
    }
    const old = [...(await storedGenerations())].filter(([, g]) => g !== 2);
    assert.deepEqual(old, [], 'records still under generation 1');
    // Followers follow the progress record too.
    await pollUntilUp('every replica reports the rewrite done', 10_000, async () => {
      for (const r of set.replicas) if ((await call(r.address, 'GET', '/v1/sys/health')).body?.root_key?.rewriting !== false) return false;
      return true;
    });
  });

  it('every replica still reads everything, and a restarted replica unseals with the new key alone', async () => {
    const follower = set.replicas.find((r) => r !== leader) as Replica;
    await follower.stop('SIGKILL');
    const restarted = await set.start(follower.index);
    for (const r of set.replicas) {
      for (let i = 0; i < 150; i += 7) {
        const got = await on(r, 'GET', `/v1/secrets/pre/s-${i}`);
        assert.equal(got.body?.data?.i, String(i), `replica ${r.index}: ${got.text}`);
      }
      assert.equal((await on(r, 'GET', '/v1/secrets/post/from-0')).body?.data?.from, '0');
    }
    assert.equal((await call(restarted.address, 'GET', '/v1/sys/health')).body.root_key.generation, 2);
  });
});
