import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KeyholdError, isKeyholdError } from '../../../../src/errors.js';
import { LocalKekManager } from '../../../../src/kubernetes/kms-plugin/local-kek.js';
import type { RootKey } from '../../../../src/kubernetes/kms-plugin/root-key.js';

/** A root key in memory (AES-GCM), with switches for "the HSM is away" and "this version was retired". */
function memoryRoot() {
  const key = randomBytes(32);
  const state = { failing: false, wraps: 0, unwraps: 0, retired: new Set<string>() };
  const root: RootKey = {
    description: 'memory root', calls: 0, reopenWhenLost: true,
    latest: async () => ({ version: 1, keyId: 'k1' }),
    wrap: async (kek) => {
      state.wraps++;
      if (state.failing) throw new Error('HSM away');
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(kek), cipher.final()]);
      return { wrapped: Buffer.concat([iv, body, cipher.getAuthTag()]), keyId: 'k1' };
    },
    unwrap: async (_keyId, wrapped) => {
      state.unwraps++;
      const decipher = createDecipheriv('aes-256-gcm', key, wrapped.subarray(0, 12));
      decipher.setAuthTag(wrapped.subarray(wrapped.length - 16));
      return Buffer.concat([decipher.update(wrapped.subarray(12, wrapped.length - 16)), decipher.final()]);
    },
    assertUsable: (keyId) => {
      if (state.retired.has(keyId)) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', 'retired');
    },
    health: async () => ({ ok: true }),
    close: async () => undefined,
  };
  return { root, state };
}

describe('local KEK manager', () => {
  it('a failed wear rotation is not retried on every Encrypt, only after a pause', async () => {
    const { root, state } = memoryRoot();
    let now = 1_000_000;
    const manager = new LocalKekManager(root, { maxUses: 3, now: () => now });
    await manager.encrypt(Buffer.alloc(32));
    assert.equal(state.wraps, 1);
    state.failing = true;
    for (let i = 0; i < 50; i++) await manager.encrypt(Buffer.alloc(32, i));
    await new Promise((r) => setImmediate(r));
    assert.equal(state.wraps, 2, 'one failed attempt for 50 worn Encrypts, not 50');
    now += 5_000;
    await manager.encrypt(Buffer.alloc(32));
    await new Promise((r) => setImmediate(r));
    assert.equal(state.wraps, 3, 'tried again after the pause');
    state.failing = false;
    now += 5_000;
    const sealed = await manager.encrypt(Buffer.alloc(32, 7));
    await new Promise((r) => setImmediate(r));
    assert.equal(state.wraps, 4);
    assert.equal(manager.uses, 0, 'the new KEK is in use');
    assert.deepEqual(await manager.decrypt(sealed.ciphertext, sealed.keyId, sealed.annotations), Buffer.alloc(32, 7));
  });

  it('a KEK cached under a retired root-key version stops decrypting', async () => {
    const { root, state } = memoryRoot();
    const manager = new LocalKekManager(root, { maxUses: 1 });
    const old = await manager.encrypt(Buffer.alloc(32, 1));
    await manager.encrypt(Buffer.alloc(32, 2)); // worn after one use: the next Encrypt made a new KEK
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await manager.decrypt(old.ciphertext, old.keyId, old.annotations), Buffer.alloc(32, 1));
    assert.equal(state.unwraps, 0, 'from the cache: no unwrap');
    state.retired.add('k1');
    await assert.rejects(async () => manager.decrypt(old.ciphertext, old.keyId, old.annotations), (err) => isKeyholdError(err, 'ERR_KEY_VERSION_NOT_FOUND'));
  });

  it('a reopened root key keeps the KEKs in memory: no unwrap for what was already unwrapped', async () => {
    const first = memoryRoot();
    const manager = new LocalKekManager(first.root, { maxUses: 1 });
    const old = await manager.encrypt(Buffer.alloc(32, 3));
    await manager.encrypt(Buffer.alloc(32, 4));
    await new Promise((r) => setImmediate(r));
    const reopened = memoryRoot(); // another handle: it could not unwrap the old KEK, and must not need to
    manager.useRoot(reopened.root);
    assert.deepEqual(await manager.decrypt(old.ciphertext, old.keyId, old.annotations), Buffer.alloc(32, 3));
    assert.equal(reopened.state.unwraps, 0);
  });
});
