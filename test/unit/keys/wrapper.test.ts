/**
 * The material wrappers: the in-memory one wraps as the HSM one does (AES-256-GCM with AAD), its
 * key is a barrier record made once at initialisation and required afterwards, and close() forgets it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { MATERIAL_WRAP_KEY_PATH, hsmMaterialWrapper, memoryMaterialWrapper, openMaterialWrapper } from '../../../src/keys/protection/wrapper.js';
import { MemoryStorage } from '../../../src/storage/memory.js';
import { flipBit } from '../../helpers/bytes.js';
import { keyholdCode } from '../../helpers/errors.js';

describe('material wrappers', () => {
  it('memory and HSM wrappers round-trip with AAD and reject a flipped bit or another AAD', async () => {
    const hsm = new MemoryHsm();
    const wrappers = [memoryMaterialWrapper(randomBytes(32)), hsmMaterialWrapper(hsm, await hsm.generateKey('wrap', 'aes256'))];
    for (const wrapper of wrappers) {
      const secret = randomBytes(48);
      const blob = await wrapper.wrap(secret, Buffer.from('aad-1'));
      assert.equal(blob.length, 12 + 48 + 16);
      assert.deepEqual(await wrapper.unwrap(blob, Buffer.from('aad-1')), secret);
      await assert.rejects(wrapper.unwrap(blob, Buffer.from('aad-2')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
      await assert.rejects(wrapper.unwrap(flipBit(blob, 200), Buffer.from('aad-1')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    }
  });

  it('close() zeroes the in-memory key; the wrapper then refuses (ERR_SEALED)', async () => {
    const key = randomBytes(32);
    const wrapper = memoryMaterialWrapper(key);
    const blob = await wrapper.wrap(Buffer.from('x'), Buffer.alloc(0));
    wrapper.close();
    assert.ok(key.equals(Buffer.alloc(32)));
    await assert.rejects(wrapper.unwrap(blob, Buffer.alloc(0)), keyholdCode('ERR_SEALED'));
  });

  it('the in-memory key is made once at initialisation (concurrently too), kept in the barrier, and required afterwards', async () => {
    const hsm = new MemoryHsm();
    const storage = new MemoryStorage();
    const barrier = new Barrier(storage, randomBytes(32));
    await assert.rejects(openMaterialWrapper(hsm, { mode: 'memory' }, null, barrier, false), keyholdCode('ERR_BARRIER_INTEGRITY', /material wrap key/));
    const [a, b] = await Promise.all([0, 1].map(() => openMaterialWrapper(hsm, { mode: 'memory' }, null, barrier, true)));
    assert.ok(a && b);
    const blob = await a.wrap(Buffer.from('material'), Buffer.from('aad'));
    assert.deepEqual(await b.unwrap(blob, Buffer.from('aad')), Buffer.from('material'));
    const later = await openMaterialWrapper(hsm, { mode: 'memory' }, null, barrier, false);
    assert.deepEqual(await later.unwrap(blob, Buffer.from('aad')), Buffer.from('material'));
    // Only ciphertext in storage: the key the barrier holds is nowhere in the stored value, raw or base64.
    const { key } = await barrier.getJson<{ key: string }>(MATERIAL_WRAP_KEY_PATH) as { key: string };
    assert.equal(Buffer.from(key, 'base64').length, 32);
    const raw = await storage.get(`data/${MATERIAL_WRAP_KEY_PATH}`);
    assert.ok(raw, 'the record is stored');
    assert.ok(!raw.includes(Buffer.from(key, 'base64')) && !raw.includes(key), 'the wrap key is in storage in the clear');
  });

  it('mode hsm without its key in the token is ERR_HSM_KEY_MISSING', async () => {
    const hsm = new MemoryHsm();
    const barrier = new Barrier(new MemoryStorage(), randomBytes(32));
    await assert.rejects(openMaterialWrapper(hsm, { mode: 'hsm', keyLabel: 'keyhold/wrap/gone' }, null, barrier, false), keyholdCode('ERR_HSM_KEY_MISSING'));
  });
});
