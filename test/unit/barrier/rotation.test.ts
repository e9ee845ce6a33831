/**
 * Root-key rotation in one process (src/barrier/rotation.ts, keyring.ts): the keyring round trip,
 * the barrier's switch to a new generation at runtime, and the rewrite job resuming from its saved
 * cursor after a stop. MemoryStorage and MemoryHsm; the real-process cases are in
 * test/integration/server/root-rotation.test.ts and test/integration/ha/root-rotation.test.ts.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier, DATA_PREFIX } from '../../../src/barrier/barrier.js';
import { deriveRootKey, KEYRING_PATH, openBarrier, keyringAfterRotation, previousKeys, readKeyring } from '../../../src/barrier/keyring.js';
import { recordGeneration } from '../../../src/barrier/record.js';
import { ROTATION_PATH, RootRotation, type RotationProgress } from '../../../src/barrier/rotation.js';
import { initializeSeal, unseal } from '../../../src/barrier/seal.js';
import { isKeyholdError } from '../../../src/errors.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { MemoryStorage, MemoryStorageData } from '../../../src/storage/memory.js';
import { pollUntil } from '../../helpers/wait.js';

const warn = (m: string) => { throw new Error(`unexpected warning: ${m}`); };

/** Opens the barrier as the runtime does at start-up: the seal's key, then the keyring's older ones. */
async function reopen(storage: MemoryStorage, hsm: MemoryHsm): Promise<Barrier> {
  return (await openBarrier(storage, await unseal(storage, hsm))).barrier;
}

async function generationsInStorage(storage: MemoryStorage): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const { key, value } of storage.snapshot()) if (key.startsWith(DATA_PREFIX)) out.set(key, recordGeneration(key.slice(DATA_PREFIX.length), value));
  return out;
}

describe('the barrier keyring', () => {
  it('round-trips older root keys through a record sealed under the current generation, and pins derived keys', async () => {
    const storage = new MemoryStorage();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const keyring = keyringAfterRotation(null, 1, k1);
    const barrier = new Barrier(storage, k2, { generation: 2 });
    await storage.atomic([], [barrier.sealedPut(KEYRING_PATH, keyring)]);
    const raw = await storage.get(DATA_PREFIX + KEYRING_PATH);
    assert.equal(recordGeneration(KEYRING_PATH, raw as Buffer), 2, 'sealed under the current generation');
    assert.equal(raw?.includes(k1), false, 'the old key is not in storage in the clear');
    const read = await readKeyring(new Barrier(storage, k2, { generation: 2 }));
    assert.deepEqual([...previousKeys(read.value)], [[1, k1]]);
    // The audit HMAC key stays what generation 1 derived, across any number of rotations.
    const derived = Buffer.from(hkdfSync('sha256', k1, Buffer.alloc(0), Buffer.from('keyhold/audit-hmac/v1'), 32));
    assert.deepEqual(deriveRootKey(k2, read.value, 'keyhold/audit-hmac/v1'), derived);
    const third = keyringAfterRotation(read.value, 2, k2);
    assert.deepEqual(deriveRootKey(randomBytes(32), third, 'keyhold/audit-hmac/v1'), derived);
    assert.deepEqual(third.keys.map((k) => k.generation), [1, 2]);
  });
});

describe('the barrier switches root key at runtime', () => {
  it('writes under the new generation, reads every generation it holds, and re-seals old records in place', async () => {
    const storage = new MemoryStorage();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const barrier = new Barrier(storage, k1);
    await barrier.putJson('a', { v: 'old' });
    barrier.useRootKey(2, k2, new Map([[1, k1]]));
    assert.equal(barrier.generation, 2);
    await barrier.putJson('b', { v: 'new' });
    const gens = await generationsInStorage(storage);
    assert.equal(gens.get('data/a'), 1);
    assert.equal(gens.get('data/b'), 2);
    assert.deepEqual(await barrier.getJson('a'), { v: 'old' });
    // Re-seal: compare-and-set on the exact bytes; a concurrent write wins.
    const rawA = await storage.get('data/a') as Buffer;
    await barrier.putJson('a', { v: 'concurrent' });
    assert.equal(await barrier.reseal('a', rawA), 'changed');
    assert.deepEqual(await barrier.getJson('a'), { v: 'concurrent' });
    await barrier.putJson('c', { v: 'c' });
    barrier.useRootKey(3, randomBytes(32), new Map([[1, k1], [2, k2]]));
    const rawC = await storage.get('data/c') as Buffer;
    assert.equal(await barrier.reseal('c', rawC), 'rewritten');
    assert.equal((await generationsInStorage(storage)).get('data/c'), 3);
    assert.deepEqual(await barrier.getJson('c'), { v: 'c' });
    // Never back to an older generation; without the old key, old records are refused.
    assert.throws(() => barrier.useRootKey(2, k2, new Map()), (e) => isKeyholdError(e, 'ERR_INTERNAL'));
    const forgetful = new Barrier(storage, k2, { generation: 2 });
    await assert.rejects(forgetful.getJson('c'), (e) => isKeyholdError(e, 'ERR_BARRIER_INTEGRITY'));
  });
});

describe('a barrier behind a newer generation it cannot unwrap yet', () => {
  it('refuses writes and reads of newer records as ERR_HSM_UNAVAILABLE until it switches; older records stay readable', async () => {
    const storage = new MemoryStorage();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const behind = new Barrier(storage, k1);
    const ahead = new Barrier(storage, k2, { generation: 2, previousKeys: new Map([[1, k1]]) });
    await behind.putJson('old', { v: 1 });
    await ahead.putJson('new', { v: 2 });
    // Before it knows: a newer record is an integrity failure, as any record it has no key for.
    await assert.rejects(behind.getJson('new'), (e) => isKeyholdError(e, 'ERR_BARRIER_INTEGRITY'));
    behind.learnNewerGeneration(1);
    await behind.putJson('still-fine', { v: 1 });
    behind.learnNewerGeneration(2);
    await assert.rejects(behind.putJson('x', { v: 1 }), (e) => isKeyholdError(e, 'ERR_HSM_UNAVAILABLE'));
    await assert.rejects(behind.getJson('new'), (e) => isKeyholdError(e, 'ERR_HSM_UNAVAILABLE'));
    assert.deepEqual(await behind.getJson('old'), { v: 1 });
    assert.equal(await storage.get('data/x'), null);
    behind.useRootKey(2, k2, new Map([[1, k1]]));
    await behind.putJson('x', { v: 2 });
    assert.deepEqual(await behind.getJson('new'), { v: 2 });
    assert.equal((await generationsInStorage(storage)).get('data/x'), 2);
  });
});

describe('writes in flight across a switch', () => {
  it('writesDrained waits for a commit sealed under the old generation, not for new ones', async () => {
    const storage = new MemoryStorage();
    const barrier = new Barrier(storage, randomBytes(32));
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const put = storage.put.bind(storage);
    storage.put = async (key: string, value: Buffer) => { await gate; return put(key, value); };
    const old = barrier.putJson('slow', { v: 1 });
    barrier.useRootKey(2, randomBytes(32), new Map());
    let drained = false;
    const waiting = barrier.writesDrained().then(() => { drained = true; });
    storage.put = put;
    await barrier.putJson('fast', { v: 2 });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(drained, false, 'the old-generation write is still in flight');
    release();
    await old;
    await waiting;
    assert.equal((await generationsInStorage(storage)).get('data/slow'), 1, 'it landed under the old generation: the final pass will rewrite it');
  });
});

describe('the rewrite job', () => {
  it('resumes from its saved cursor after a stop, ends with no record under the old generation and drops the old key', async () => {
    const data = new MemoryStorageData();
    const hsm = new MemoryHsm();
    const first = new MemoryStorage(data);
    const { rootKey } = await initializeSeal(first, hsm);
    const barrier = new Barrier(first, rootKey);
    const N = 60;
    for (let i = 0; i < N; i++) await barrier.putJson(`r/${String(i).padStart(3, '0')}`, { i });

    const rotation = new RootRotation({ storage: first, barrier, hsm, warn, settings: { batchSize: 5, pauseMs: 30 } });
    rotation.job.start();
    const started = await rotation.rotate();
    assert.deepEqual({ generation: started.generation, rewriting: started.rewriting }, { generation: 2, rewriting: true });
    await assert.rejects(rotation.rotate(), (e) => isKeyholdError(e, 'ERR_ROTATION_IN_PROGRESS'), 'a second rotation waits for the rewrite');
    await pollUntil('a few batches done', async () => ((await barrier.getJson<RotationProgress>(ROTATION_PATH))?.passScanned ?? 0) >= 15, { timeoutMs: 10_000, intervalMs: 5 });
    rotation.job.stop();
    await rotation.job.idle();
    const saved = await barrier.getJson<RotationProgress>(ROTATION_PATH) as RotationProgress;
    assert.equal(saved.pass, 1);
    assert.ok(saved.cursor > 'r/' && saved.cursor < `r/${N - 1}`, `stopped in the middle (cursor ${saved.cursor})`);

    // "Restart": a new barrier and job over the same data; note which records the job reads.
    const fetched: string[] = [];
    const second = new MemoryStorage(data);
    const get = second.get.bind(second);
    second.get = (key: string) => { fetched.push(key); return get(key); };
    const reopened = await reopen(second, hsm);
    assert.deepEqual(reopened.generations, [1, 2]);
    const resumed = new RootRotation({ storage: second, barrier: reopened, hsm, warn, settings: { batchSize: 5, pauseMs: 0 } });
    resumed.job.start();
    await pollUntil('the rewrite finished', async () => (await reopened.getJson<RotationProgress>(ROTATION_PATH))?.rewriting === false, { timeoutMs: 10_000, intervalMs: 5 });
    resumed.job.stop();
    await resumed.job.idle();
    const firstRecordRead = fetched.find((k) => k.startsWith('data/r/'));
    assert.ok(firstRecordRead !== undefined && firstRecordRead > DATA_PREFIX + saved.cursor, `resumed after ${saved.cursor}, not from the start (first read ${firstRecordRead})`);

    for (const [key, generation] of await generationsInStorage(second)) assert.equal(generation, 2, `${key} is under generation ${generation}`);
    const keyring = (await readKeyring(reopened)).value;
    assert.deepEqual(keyring?.keys, [], 'the old key left the keyring');
    assert.deepEqual(reopened.generations, [2]);
    const done = await reopened.getJson<RotationProgress>(ROTATION_PATH) as RotationProgress;
    assert.ok(done.finishedAt && done.rewritten >= N, `rewrote every record (${done.rewritten})`);
    const fresh = await reopen(new MemoryStorage(data), hsm);
    for (let i = 0; i < N; i++) assert.deepEqual(await fresh.getJson(`r/${String(i).padStart(3, '0')}`), { i });
    // The next rotation is allowed now.
    assert.equal((await resumed.rotate()).generation, 3);
  });
});
