/**
 * Every barrier record names the generation of the root key that sealed it, authenticated with
 * its path; records from before generations (format 1) read as generation 1. Real SQLite.
 */
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { recordGeneration } from '../../../src/barrier/record.js';
import { aesGcmSeal } from '../../../src/crypto/aead.js';
import { isKeyholdError } from '../../../src/errors.js';
import { sqliteFile } from './support.js';

const integrity = (err: unknown) => isKeyholdError(err, 'ERR_BARRIER_INTEGRITY');

/** A record exactly as barriers before generations wrote it: 0x01 ‖ iv ‖ ciphertext ‖ tag, AAD of the path alone. */
function formatOneRecord(rootKey: Buffer, path: string, value: unknown): Buffer {
  return Buffer.concat([Buffer.of(1), aesGcmSeal(rootKey, Buffer.from(JSON.stringify(value)), Buffer.from(`keyhold-barrier-v1\0${path}`))]);
}

function withGeneration(raw: Buffer, generation: number): Buffer {
  const copy = Buffer.from(raw);
  copy.writeUInt32BE(generation, 1);
  return copy;
}

describe('root-key generations in barrier records', () => {
  const storage = sqliteFile('generations').open();

  it('writes the current generation into every record', async () => {
    const barrier = new Barrier(storage, randomBytes(32), { generation: 7 });
    await barrier.putJson('g/one', { a: 1 });
    const view = barrier.view({ storage: 'g/', policy: 'g' });
    await view.commit([], [view.write('two', 2), view.write('three', 3)]);
    for (const path of ['g/one', 'g/two', 'g/three']) {
      const raw = await storage.get(`data/${path}`);
      assert.ok(raw);
      assert.equal(raw[0], 2);
      assert.equal(recordGeneration(path, raw), 7);
    }
    assert.equal(new Barrier(storage, randomBytes(32)).generation, 1, 'default: the first root key');
  });

  it('reads records written before generations (format 1) as generation 1', async () => {
    const rootKey = randomBytes(32);
    await storage.put('data/old/rec', formatOneRecord(rootKey, 'old/rec', { from: 'before' }));
    assert.equal(recordGeneration('old/rec', (await storage.get('data/old/rec')) as Buffer), 1);
    assert.deepEqual(await new Barrier(storage, rootKey).getJson('old/rec'), { from: 'before' });
    // After a rotation the old generation's key still opens it; new writes use the new generation.
    const rotated = new Barrier(storage, randomBytes(32), { generation: 2, previousKeys: new Map([[1, rootKey]]) });
    assert.deepEqual(await rotated.getJson('old/rec'), { from: 'before' });
    await rotated.putJson('old/rec', { from: 'after' });
    assert.equal(recordGeneration('old/rec', (await storage.get('data/old/rec')) as Buffer), 2);
    assert.deepEqual(await rotated.getJson('old/rec'), { from: 'after' });
    await assert.rejects(new Barrier(storage, rootKey).getJson('old/rec'), integrity, 'a server without generation 2 cannot read it');
    // A format-1 record is still bound to its path.
    await storage.put('data/old/moved', formatOneRecord(rootKey, 'old/rec', { from: 'before' }));
    await assert.rejects(new Barrier(storage, rootKey).getJson('old/moved'), integrity);
  });

  it('refuses a record whose generation field was changed, even to a generation whose key opens it', async () => {
    const key = randomBytes(32);
    // Generations 1 and 2 with the same key: only the authenticated header can tell them apart.
    const barrier = new Barrier(storage, key, { generation: 2, previousKeys: new Map([[1, key]]) });
    await barrier.putJson('t/rec', { v: 'x' });
    const raw = (await storage.get('data/t/rec')) as Buffer;
    for (const generation of [1, 3, 0, 0xffffffff]) {
      await storage.put('data/t/rec', withGeneration(raw, generation));
      await assert.rejects(barrier.getJson('t/rec'), integrity, `generation ${generation}`);
    }
    // Nor may a record be passed off as format 1 (with or without its generation bytes).
    await storage.put('data/t/rec', Buffer.concat([Buffer.of(1), raw.subarray(5)]));
    await assert.rejects(barrier.getJson('t/rec'), integrity);
    await storage.put('data/t/rec', Buffer.of(1, ...raw.subarray(1)));
    await assert.rejects(barrier.getJson('t/rec'), integrity);
    await storage.put('data/t/rec', raw);
    assert.deepEqual(await barrier.getJson('t/rec'), { v: 'x' });
  });

  it('refuses generations out of range', () => {
    for (const generation of [0, -1, 1.5, 2 ** 32]) {
      assert.throws(() => new Barrier(storage, randomBytes(32), { generation }), (err: unknown) => isKeyholdError(err, 'ERR_INTERNAL'));
    }
  });
});
