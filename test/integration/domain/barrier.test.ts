import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier, type BarrierRead } from '../../../src/barrier/barrier.js';
import { SEAL_RECORD_KEY, initializeSeal, isInitialized, materialWrapOf, unseal, type SealRecord, type SealRecordV2 } from '../../../src/barrier/seal.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { MemoryStorage } from '../../../src/storage/memory.js';
import { code } from './support.js';
import { flipBit } from '../../helpers/bytes.js';

/** A record this keyhold writes: version 2, its wrapped root key in storage. */
function v2(record: SealRecord): SealRecordV2 & { wrappedRootKey: string } {
  assert.equal(record.version, 2);
  assert.equal(typeof record.wrappedRootKey, 'string');
  return record as SealRecordV2 & { wrappedRootKey: string };
}

/** The HSM wrap key's label (stores on tokens with AES-GCM keep it there). */
function wrapLabel(record: SealRecord): string {
  const wrap = materialWrapOf(record);
  assert.equal(wrap.mode, 'hsm');
  return wrap.keyLabel;
}

// Barrier and seal logic over the Storage and Hsm interfaces: the in-memory implementations (which
// pass the same contract suites as SQLite and SoftHSM) keep these tests free of files and tokens.
// The SoftHSM-backed path is covered end to end by keys.test.ts and test/integration/server/.
let hsm: MemoryHsm;
const opened: MemoryStorage[] = [];

/** A new, empty store. */
function newStorage(): MemoryStorage {
  const storage = new MemoryStorage();
  opened.push(storage);
  return storage;
}

before(async () => {
  hsm = await MemoryHsm.open();
});
after(async () => {
  await hsm.close();
  for (const s of opened) await s.close();
});

describe('barrier records', () => {
  let storage: MemoryStorage;
  let barrier: Barrier;

  before(() => {
    storage = newStorage();
    barrier = new Barrier(storage, randomBytes(32));
  });

  it('round-trips JSON records', async () => {
    const values: unknown[] = [{ a: 1, b: 'two', c: [true, null, { d: 'ünï ✓' }] }, [1, 2, 3], 'a string', 42, false, {}, { big: 'x'.repeat(200_000) }];
    for (const [i, value] of values.entries()) {
      await barrier.putJson(`rt/${i}`, value);
      assert.deepEqual(await barrier.getJson(`rt/${i}`), value);
      const read = await barrier.read(`rt/${i}`);
      assert.deepEqual(read.value, value);
      assert.ok(read.raw && read.raw.length > 0);
    }
    await barrier.putJson('rt/0', { replaced: true });
    assert.deepEqual(await barrier.getJson('rt/0'), { replaced: true });
    assert.equal(await barrier.getJson('rt/missing'), null);
    assert.deepEqual(await barrier.read('rt/missing'), { path: 'rt/missing', value: null, raw: null });
    await barrier.delete('rt/0');
    assert.equal(await barrier.getJson('rt/0'), null);
    await barrier.delete('rt/0');
    assert.deepEqual((await barrier.list('rt/')).sort(), ['rt/1', 'rt/2', 'rt/3', 'rt/4', 'rt/5', 'rt/6']);
  });

  it('a second barrier with the same root key reads the records; one with another key cannot', async () => {
    const rootKey = randomBytes(32);
    const s = newStorage();
    await new Barrier(s, rootKey).putJson('shared/x', { x: 1 });
    assert.deepEqual(await new Barrier(s, Buffer.from(rootKey)).getJson('shared/x'), { x: 1 });
    await assert.rejects(new Barrier(s, randomBytes(32)).getJson('shared/x'), code('ERR_BARRIER_INTEGRITY'));
  });

  it('refuses a root key that is not 256 bits', () => {
    for (const length of [0, 16, 31, 33, 64]) assert.throws(() => new Barrier(storage, randomBytes(length)), code('ERR_INTERNAL'));
  });

  it('hands storage no plaintext', async () => {
    const marker = `plaintext-marker-${randomBytes(8).toString('hex')}`;
    const value = { password: marker, note: 'correct horse battery staple' };
    await barrier.putJson('secret/record', value);
    const raw = await storage.get('data/secret/record');
    assert.ok(raw);
    for (const needle of [JSON.stringify(value), marker, 'correct horse', 'password']) {
      assert.ok(!raw.includes(Buffer.from(needle)), `storage holds "${needle}"`);
    }
    assert.ok(!raw.includes(Buffer.from(marker).toString('base64')));
    assert.ok(!raw.includes(Buffer.from(marker).toString('hex')));
    // Layout: format byte, root-key generation (u32), iv(12), ciphertext, tag(16): nothing else is stored.
    assert.equal(raw[0], 2);
    assert.equal(raw.readUInt32BE(1), 1);
    assert.equal(raw.length, 1 + 4 + 12 + Buffer.byteLength(JSON.stringify(value)) + 16);
    // Only barrier records and nothing else were written.
    for (const key of await storage.list('')) assert.ok(key.startsWith('data/'), key);
    // Two writes of the same value differ (fresh IV).
    await barrier.putJson('secret/record', value);
    assert.ok(!(await storage.get('data/secret/record'))?.equals(raw));
  });

  it('binds a record to its path: raw bytes copied elsewhere fail with ERR_BARRIER_INTEGRITY', async () => {
    await barrier.putJson('bind/a', { who: 'a' });
    await barrier.putJson('bind/b', { who: 'b' });
    const raw = await storage.get('data/bind/a');
    assert.ok(raw);
    await storage.put('data/bind/copy', raw);
    await assert.rejects(barrier.getJson('bind/copy'), code('ERR_BARRIER_INTEGRITY'));
    // Swapping two existing records is caught too.
    await storage.put('data/bind/b', raw);
    await assert.rejects(barrier.getJson('bind/b'), code('ERR_BARRIER_INTEGRITY'));
    await assert.rejects(barrier.read('bind/b'), code('ERR_BARRIER_INTEGRITY'));
    assert.deepEqual(await barrier.getJson('bind/a'), { who: 'a' });
  });

  it('detects any flipped bit, truncation or extension with ERR_BARRIER_INTEGRITY', async () => {
    await barrier.putJson('tamper/x', { value: 'do not touch' });
    const raw = await storage.get('data/tamper/x');
    assert.ok(raw);
    const positions = [0, 1, 4, 5, 12, 13, 20, raw.length - 17, raw.length - 16, raw.length - 1];
    for (const byte of positions) {
      for (const bit of [7, 0]) {
        await storage.put('data/tamper/x', flipBit(raw, byte * 8 + bit));
        await assert.rejects(barrier.getJson('tamper/x'), code('ERR_BARRIER_INTEGRITY'), `bit ${bit} of byte ${byte}`);
      }
    }
    for (const bad of [raw.subarray(0, raw.length - 1), raw.subarray(0, 20), raw.subarray(0, 1), Buffer.concat([raw, Buffer.of(0)]), Buffer.alloc(0), Buffer.of(1, ...raw.subarray(1)), Buffer.of(3, ...raw.subarray(1)), raw.subarray(0, 5)]) {
      await storage.put('data/tamper/x', bad);
      await assert.rejects(barrier.getJson('tamper/x'), code('ERR_BARRIER_INTEGRITY'), `length ${bad.length}`);
    }
    await storage.put('data/tamper/x', raw);
    assert.deepEqual(await barrier.getJson('tamper/x'), { value: 'do not touch' });
  });

  it('refuses invalid paths with ERR_BAD_REQUEST on every entry point', async () => {
    const bad = ['', '..', '.', 'a/..', '../a', 'a/../b', 'a//b', '/a', 'a/', 'a b', 'a\\b', 'a\0b', 'ä', 'a/./b', 'x'.repeat(600), 'x'.repeat(513)];
    const read: BarrierRead<unknown> = { path: 'ok/path', value: null, raw: null };
    for (const p of bad) {
      const what = JSON.stringify(p.slice(0, 20));
      await assert.rejects(barrier.getJson(p), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.read(p), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.putJson(p, { a: 1 }), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.delete(p), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.commit([read], [{ path: p, value: 1 }]), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.commit([read], [{ path: p, delete: true }]), code('ERR_BAD_REQUEST'), what);
      await assert.rejects(barrier.update(p, () => ({ writes: [], result: null })), code('ERR_BAD_REQUEST'), what);
    }
    // Nothing was written by the refused calls.
    assert.equal(await storage.get('data/ok/path'), null);
    // The limits themselves are fine.
    const longest = 'y'.repeat(512);
    await barrier.putJson(longest, { ok: true });
    assert.deepEqual(await barrier.getJson(longest), { ok: true });
    await barrier.putJson('A-z_0.9/..a/b..', 1);
    assert.equal(await barrier.getJson('A-z_0.9/..a/b..'), 1);
  });

  it('commit with a stale read returns false and writes nothing', async () => {
    await barrier.putJson('cas/a', { n: 1 });
    const stale = await barrier.read<{ n: number }>('cas/a');
    const absent = await barrier.read('cas/new');
    await barrier.putJson('cas/a', { n: 2 });
    assert.equal(await barrier.commit([stale], [{ path: 'cas/a', value: { n: 3 } }, { path: 'cas/other', value: 'x' }, { path: 'cas/gone', delete: true }]), false);
    assert.deepEqual(await barrier.getJson('cas/a'), { n: 2 });
    assert.equal(await barrier.getJson('cas/other'), null);

    // A read of an absent record goes stale when the record appears.
    await barrier.putJson('cas/new', 'appeared');
    assert.equal(await barrier.commit([absent], [{ path: 'cas/new', value: 'mine' }]), false);
    assert.equal(await barrier.getJson('cas/new'), 'appeared');

    // Several reads: one stale one fails the whole commit.
    const fresh = await barrier.read('cas/a');
    assert.equal(await barrier.commit([fresh, stale], [{ path: 'cas/other', value: 'x' }]), false);
    assert.equal(await barrier.getJson('cas/other'), null);

    // A current read commits, atomically with other writes and deletes.
    await barrier.putJson('cas/gone', 'bye');
    assert.equal(await barrier.commit([fresh], [{ path: 'cas/a', value: { n: 3 } }, { path: 'cas/other', value: 'x' }, { path: 'cas/gone', delete: true }]), true);
    assert.deepEqual(await barrier.getJson('cas/a'), { n: 3 });
    assert.equal(await barrier.getJson('cas/other'), 'x');
    assert.equal(await barrier.getJson('cas/gone'), null);
    // ... and is stale afterwards.
    assert.equal(await barrier.commit([fresh], [{ path: 'cas/a', value: { n: 4 } }]), false);
    // A read of an unchanged value re-written with the same JSON is stale too (fresh IV, new bytes).
    const before = await barrier.read('cas/a');
    await barrier.putJson('cas/a', { n: 3 });
    assert.equal(await barrier.commit([before], [{ path: 'cas/a', value: { n: 5 } }]), false);
  });

  it('update retries under contention and loses no increment', async () => {
    await barrier.putJson('counter', 0);
    await Promise.all(Array.from({ length: 40 }, () => barrier.update<number, void>('counter', (n) => ({ writes: [{ path: 'counter', value: (n ?? 0) + 1 }], result: undefined }))));
    assert.equal(await barrier.getJson('counter'), 40);
    await assert.rejects(barrier.update('counter', () => {
      throw new Error('callback failure propagates');
    }), /callback failure propagates/);
    assert.equal(await barrier.getJson('counter'), 40);
  });

  it('after seal() every read and write throws ERR_SEALED', async () => {
    const s = newStorage();
    const sealedBarrier = new Barrier(s, randomBytes(32));
    await sealedBarrier.putJson('present', { here: true });
    const read = await sealedBarrier.read('present');
    assert.equal(sealedBarrier.sealed, false);
    sealedBarrier.seal();
    assert.equal(sealedBarrier.sealed, true);
    const before = new Map<string, Buffer | null>();
    for (const key of await s.list('')) before.set(key, await s.get(key));

    await assert.rejects(sealedBarrier.getJson('present'), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.read('present'), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.getJson('absent'), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.putJson('present', { changed: true }), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.putJson('new', 1), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.delete('present'), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.list(''), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.commit([read], [{ path: 'present', value: 2 }]), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.commit([read], [{ path: 'present', delete: true }]), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.commit([], []), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.update('present', () => ({ writes: [], result: null })), code('ERR_SEALED'));
    await assert.rejects(sealedBarrier.update('absent', () => ({ writes: [{ path: 'absent', delete: true }], result: null })), code('ERR_SEALED'));

    // Storage is exactly as it was.
    const afterSeal = new Map<string, Buffer | null>();
    for (const key of await s.list('')) afterSeal.set(key, await s.get(key));
    assert.deepEqual(afterSeal, before);
  });
});

describe('seal', () => {
  it('initializeSeal stores only ciphertext and labels; unseal returns the same root key', async () => {
    const s = newStorage();
    assert.equal(await isInitialized(s), false);
    const init = await initializeSeal(s, hsm);
    assert.equal(await isInitialized(s), true);
    assert.equal(init.rootKey.length, 32);
    assert.ok(hsm.findKey(init.record.sealKeyLabel, 'aes256'));
    assert.ok(hsm.findKey(wrapLabel(init.record), 'aes256'));
    assert.notEqual(init.record.sealKeyLabel, wrapLabel(init.record));

    const raw = await s.get(SEAL_RECORD_KEY);
    assert.ok(raw);
    const record = JSON.parse(raw.toString('utf8')) as SealRecord;
    assert.deepEqual(record, init.record);
    assert.deepEqual(Object.keys(record).sort(), ['createdAt', 'method', 'rootKeyGeneration', 'sealKeyLabel', 'tokenSerial', 'version', 'wrap', 'wrappedRootKey']);
    assert.equal(record.tokenSerial, hsm.token.serial);
    // iv ‖ encrypted root key ‖ tag; never the root key itself.
    assert.equal(record.version === 2 && record.method, 'aes-gcm');
    assert.equal(Buffer.from(v2(record).wrappedRootKey, 'base64').length, 12 + 32 + 16);
    for (const encoding of ['base64', 'base64url', 'hex'] as const) assert.ok(!raw.toString('utf8').includes(init.rootKey.toString(encoding)));
    assert.ok(!raw.includes(init.rootKey));

    const barrier = new Barrier(s, Buffer.from(init.rootKey));
    await barrier.putJson('through/seal', { written: 'before unseal' });
    for (const key of await s.list('')) {
      assert.ok(!(await s.get(key))?.includes(init.rootKey), `root key bytes in ${key}`);
    }

    const again = await unseal(s, hsm);
    assert.ok(again.rootKey.equals(init.rootKey));
    assert.equal(again.sealKey.label, init.sealKey.label);
    assert.ok(again.wrapKey && init.wrapKey);
    assert.equal(again.wrapKey.label, init.wrapKey.label);
    assert.deepEqual(await new Barrier(s, again.rootKey).getJson('through/seal'), { written: 'before unseal' });
    // The wrap key works across the two: what one wraps the other unwraps.
    const wrapped = await hsm.aesGcmEncrypt(init.wrapKey, Buffer.from('material'), Buffer.from('aad'));
    assert.deepEqual(await hsm.aesGcmDecrypt(again.wrapKey, wrapped, Buffer.from('aad')), Buffer.from('material'));
  });

  it('names the root key\'s generation; a seal record from before generations opens as generation 1', async () => {
    const s = newStorage();
    const init = await initializeSeal(s, hsm);
    assert.equal(init.record.rootKeyGeneration, 1);
    assert.equal(init.generation, 1);
    assert.equal((await unseal(s, hsm)).generation, 1);
    // A store sealed before generations: no field, and records in format 1.
    const { rootKeyGeneration: _dropped, ...older } = init.record;
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify(older)));
    const opened = await unseal(s, hsm);
    assert.equal(opened.generation, 1);
    assert.ok(opened.rootKey.equals(init.rootKey));
    // A generation that is no generation is refused before anything is decrypted.
    for (const bad of [0, -2, 1.5, 'two', 2 ** 32]) {
      await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, rootKeyGeneration: bad })));
      await assert.rejects(unseal(s, hsm), code('ERR_BARRIER_INTEGRITY'), String(bad));
    }
  });

  it('each store gets its own keys', async () => {
    const a = await initializeSeal(newStorage(), hsm);
    const b = await initializeSeal(newStorage(), hsm);
    assert.notEqual(a.record.sealKeyLabel, b.record.sealKeyLabel);
    assert.notEqual(wrapLabel(a.record), wrapLabel(b.record));
    assert.ok(!a.rootKey.equals(b.rootKey));
  });

  it('initializeSeal twice is ERR_ALREADY_INITIALIZED and changes nothing', async () => {
    const s = newStorage();
    const first = await initializeSeal(s, hsm);
    const raw = await s.get(SEAL_RECORD_KEY);
    await assert.rejects(initializeSeal(s, hsm), code('ERR_ALREADY_INITIALIZED'));
    assert.deepEqual(await s.get(SEAL_RECORD_KEY), raw);
    assert.ok((await unseal(s, hsm)).rootKey.equals(first.rootKey));
  });

  it('concurrent initializeSeal on one store: exactly one wins', async () => {
    const s = newStorage();
    const results = await Promise.allSettled([initializeSeal(s, hsm), initializeSeal(s, hsm), initializeSeal(s, hsm)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) if (r.status === 'rejected') code('ERR_ALREADY_INITIALIZED')(r.reason);
    const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof initializeSeal>>>).value;
    assert.ok((await unseal(s, hsm)).rootKey.equals(winner.rootKey));
  });

  it('unseal on an empty store is ERR_NOT_INITIALIZED and writes nothing', async () => {
    const s = newStorage();
    await assert.rejects(unseal(s, hsm), code('ERR_NOT_INITIALIZED'));
    assert.deepEqual(await s.list(''), []);
  });

  it('a tampered wrappedRootKey is ERR_BARRIER_INTEGRITY', async () => {
    const s = newStorage();
    const init = await initializeSeal(s, hsm);
    const wrapped = Buffer.from(v2(init.record).wrappedRootKey, 'base64');
    for (const byte of [0, 11, 12, 30, 43, 44, 59]) {
      const tampered: SealRecord = { ...init.record, wrappedRootKey: flipBit(wrapped, byte * 8 + 5).toString('base64') };
      await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify(tampered)));
      await assert.rejects(unseal(s, hsm), code('ERR_BARRIER_INTEGRITY'), `byte ${byte}`);
    }
    // Another store's wrapped root key, under this store's seal key label.
    const other = await initializeSeal(newStorage(), hsm);
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, wrappedRootKey: other.record.wrappedRootKey })));
    await assert.rejects(unseal(s, hsm), code('ERR_BARRIER_INTEGRITY'));
    // Truncated.
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, wrappedRootKey: wrapped.subarray(0, 20).toString('base64') })));
    await assert.rejects(unseal(s, hsm), (err: unknown) => {
      assert.ok((err as { code?: string }).code === 'ERR_BARRIER_INTEGRITY' || (err as { code?: string }).code === 'ERR_CIPHERTEXT_INVALID', String(err));
      return true;
    });
    // Restored, it unseals again.
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify(init.record)));
    assert.ok((await unseal(s, hsm)).rootKey.equals(init.rootKey));
  });

  it('a seal record that is not JSON is ERR_BARRIER_INTEGRITY; unknown HSM labels are ERR_HSM_KEY_MISSING', async () => {
    const s = newStorage();
    const init = await initializeSeal(s, hsm);
    await s.put(SEAL_RECORD_KEY, Buffer.from('{not json'));
    await assert.rejects(unseal(s, hsm), code('ERR_BARRIER_INTEGRITY'));
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, sealKeyLabel: 'keyhold/seal/nope' })));
    await assert.rejects(unseal(s, hsm), code('ERR_HSM_KEY_MISSING'));
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, wrap: { mode: 'hsm', keyLabel: 'keyhold/wrap/nope' } })));
    await assert.rejects(unseal(s, hsm), code('ERR_HSM_KEY_MISSING'));
    // The wrap key label of this store where the seal key belongs: a real key, but the wrong one.
    await s.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify({ ...init.record, sealKeyLabel: wrapLabel(init.record) })));
    await assert.rejects(unseal(s, hsm), code('ERR_BARRIER_INTEGRITY'));
  });
});
