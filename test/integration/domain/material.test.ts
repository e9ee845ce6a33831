import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { initializeSeal } from '../../../src/barrier/seal.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import type { KeysContext } from '../../../src/keys/context.js';
import { decrypt, encrypt } from '../../../src/keys/encrypt.js';
import { createKey } from '../../../src/keys/lifecycle.js';
import { MaterialCache } from '../../../src/keys/material.js';
import { KeyRecordStore } from '../../../src/keys/record-store.js';
import type { KeyRecord } from '../../../src/keys/types.js';
import { MemoryStorage } from '../../../src/storage/memory.js';
import { code } from './support.js';
import { hsmMaterialWrapper, type MaterialWrapper } from '../../../src/keys/protection/wrapper.js';

// Cache lifetimes over the Hsm interface: the in-memory HSM counts its calls as a token does.
let hsm: MemoryHsm;
let storage: MemoryStorage;
let material: MaterialCache;
let ctx: KeysContext;
let wrapper: MaterialWrapper;

before(async () => {
  hsm = await MemoryHsm.open();
  storage = new MemoryStorage();
  const sealed = await initializeSeal(storage, hsm);
  const rootKey = sealed.rootKey;
  assert.ok(sealed.wrapKey);
  wrapper = hsmMaterialWrapper(hsm, sealed.wrapKey);
  const barrier = new Barrier(storage, rootKey);
  // A 1 s lifetime: the sweeper runs every second.
  material = new MaterialCache(hsm, wrapper, 1000);
  ctx = { hsm, wrapper, records: new KeyRecordStore(barrier.view(MOUNTS.keys)), material };
});

after(async () => {
  material.clear();
  await hsm.close();
  await storage.close();
});

describe('unwrapped key material', () => {
  it('is unwrapped once per lifetime, and dropped after it even when the key is not used again', async () => {
    await createKey(ctx, { name: 'short-lived', type: 'aes256-gcm', protection: 'wrapped' });
    const before = hsm.callCount;
    const { ciphertext } = await encrypt(ctx, 'short-lived', Buffer.from('a'));
    await decrypt(ctx, 'short-lived', ciphertext);
    assert.equal(hsm.callCount - before, 1, 'one HSM unwrap serves both operations');

    assert.equal(material.size, 1);
    const held = material.cached(await ctx.records.get('short-lived'), 1);
    assert.ok(held);
    await new Promise((resolve) => setTimeout(resolve, 2300));
    assert.equal(material.size, 0, 'expired material is still held with no request to evict it');
    await assert.rejects(held.seal(Buffer.from('a'), Buffer.alloc(0)), code('ERR_CONFLICT'), 'expired material still usable');

    await decrypt(ctx, 'short-lived', ciphertext);
    assert.equal(hsm.callCount - before, 2, 'after expiry the material is unwrapped again');
  });
});

describe('the material cache', () => {
  const NO_AAD = Buffer.alloc(0);

  it('closes the versions it forgets (key reconfigured or deleted): a holder can no longer use them', async () => {
    const record = await createKey(ctx, { name: 'forgotten', type: 'aes256-gcm', protection: 'wrapped' });
    const held = await material.get(record, 1);
    assert.equal(material.cached(record, 1), held, 'a loaded version is served from the cache, synchronously');
    material.forget(record.id);
    assert.equal(material.cached(record, 1), undefined);
    await assert.rejects(held.seal(Buffer.from('x'), NO_AAD), code('ERR_CONFLICT'));
    const { ciphertext } = await encrypt(ctx, 'forgotten', Buffer.from('reloaded'));
    assert.deepEqual((await decrypt(ctx, 'forgotten', ciphertext)).plaintext, Buffer.from('reloaded'));
  });

  it('keeps one material when two requests load the same version at once, and closes the other', async () => {
    const record = await createKey(ctx, { name: 'raced', type: 'aes256-gcm', protection: 'wrapped' });
    const before = hsm.callCount;
    const [a, b] = await Promise.all([material.get(record, 1), material.get(record, 1)]);
    assert.equal(hsm.callCount - before, 2, 'both loads unwrapped');
    assert.equal(a, b);
    assert.equal(material.cached(record, 1), a);
    assert.equal((await a.seal(Buffer.from('x'), NO_AAD)).length, 12 + 1 + 16);
  });

  it('when full, makes room by closing whole keys, the one loaded first first', async () => {
    const small = new MaterialCache(hsm, wrapper, 60_000, 2);
    try {
      const records = [];
      for (const name of ['full-a', 'full-b', 'full-c']) records.push(await createKey(ctx, { name, type: 'hmac-sha256', protection: 'wrapped' }));
      const [a, b, c] = records as [KeyRecord, KeyRecord, KeyRecord];
      const first = await small.get(a, 1);
      await small.get(b, 1);
      await small.get(c, 1);
      assert.equal(small.size, 2);
      assert.equal(small.cached(a, 1), undefined);
      assert.ok(small.cached(b, 1) && small.cached(c, 1));
      await assert.rejects(first.sign(Buffer.from('x')), code('ERR_CONFLICT'));
    } finally {
      small.clear();
    }
  });

  it('closes everything when cleared (runtime close)', async () => {
    const cache = new MaterialCache(hsm, wrapper);
    const record = await createKey(ctx, { name: 'cleared', type: 'ec-p256', protection: 'wrapped' });
    const held = await cache.get(record, 1);
    await held.sign(Buffer.from('x'));
    cache.clear();
    assert.equal(cache.size, 0);
    await assert.rejects(held.sign(Buffer.from('x')), code('ERR_CONFLICT'));
  });
});
