import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { checkRecoveryParameters, createRecovery, recoverRootKey, recoveryFieldsFor, RECOVERY_KEY_KEY, type ShareInput } from '../../../src/barrier/recovery.js';
import { initializeSeal, protectRoot, recoveryOf, SEAL_RECORD_KEY, type SealRecord } from '../../../src/barrier/seal.js';
import { isKeyholdError } from '../../../src/errors.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { MemoryStorage } from '../../../src/storage/memory.js';

const inputs = (shares: string[]): ShareInput[] => shares.map((text, i) => ({ text, source: `share ${i + 1}` }));

describe('recovery shares', () => {
  it('any threshold of the shares recover the root key; the split and R are not kept in the result', async () => {
    const rootKey = randomBytes(32);
    const made = await createRecovery(rootKey, 1, 5, 3);
    assert.equal(made.shares.length, 5);
    for (const pick of [[0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]]) {
      const recovered = await recoverRootKey(made.fields, 1, inputs(pick.map((i) => made.shares[i] as string)));
      assert.ok(recovered.equals(rootKey), pick.join(','));
    }
    assert.ok(!JSON.stringify(made.fields).includes(made.barrierRecord.key));
  });

  it('refuses the AAD of another generation (a recovery copy moved between generations)', async () => {
    const made = await createRecovery(randomBytes(32), 1, 3, 2);
    await assert.rejects(recoverRootKey(made.fields, 2, inputs(made.shares.slice(0, 2))), (err) => isKeyholdError(err, 'ERR_BARRIER_INTEGRITY'));
  });

  it('recoveryFieldsFor: a rotated root key of a new generation is recovered by the shares handed out at init', async () => {
    const oldRoot = randomBytes(32);
    const made = await createRecovery(oldRoot, 1, 5, 3);
    const storage = new MemoryStorage();
    const barrier = new Barrier(storage, oldRoot);
    await barrier.view(MOUNTS.seal).put(RECOVERY_KEY_KEY, made.barrierRecord);
    const newRoot = randomBytes(32);
    const fields = await recoveryFieldsFor(barrier.view(MOUNTS.seal), newRoot, 2);
    assert.ok(fields);
    assert.equal(fields.setId, made.fields.setId);
    assert.equal(fields.keyCheck, made.fields.keyCheck);
    assert.ok((await recoverRootKey(fields, 2, inputs([made.shares[3] as string, made.shares[0] as string, made.shares[2] as string]))).equals(newRoot));
    // A store without recovery shares: nothing to re-wrap.
    assert.equal(await recoveryFieldsFor(new Barrier(new MemoryStorage(), oldRoot).view(MOUNTS.seal), newRoot, 2), undefined);
  });

  it('checks share counts the way the package needs them', () => {
    for (const [n, m] of [[5, 3], [2, 2], [255, 255], [255, 2]] as const) checkRecoveryParameters(n, m);
    for (const [n, m] of [[5, 1], [1, 1], [3, 4], [256, 3], [Number.NaN, 2], [2.5, 2], [0, 0]] as const) {
      assert.throws(() => checkRecoveryParameters(n, m), (err) => isKeyholdError(err, 'ERR_CONFIG'), `${n}/${m}`);
    }
  });

  it('initializeSeal with wrap memory on an AES-GCM token makes no HSM wrap key; protectRoot never carries the previous record\'s recovery copy over (AES-GCM or RSA-OAEP)', async () => {
    const storage = new MemoryStorage();
    const aes = new MemoryHsm();
    const init = await initializeSeal(storage, aes, { wrap: { mode: 'memory' } });
    assert.equal(init.wrapKey, null);
    assert.deepEqual(init.wrap, { mode: 'memory' });
    assert.deepEqual(aes.listKeys('keyhold/wrap/', 'aes256'), []);
    const made = await createRecovery(init.rootKey, 1, 3, 2);
    const previous = { ...(JSON.parse(String(await storage.get(SEAL_RECORD_KEY))) as SealRecord), recovery: made.fields } as SealRecord;
    assert.ok(recoveryOf(previous));
    for (const hsm of [aes, new MemoryHsm({ withoutCapabilities: ['aesGcm', 'aesKeyWrapPad', 'hmacSha256'] })]) {
      const { record } = await protectRoot(hsm, randomBytes(32), 2, previous);
      assert.equal(recoveryOf(record), undefined, 'a recovery copy of the previous root key would be stale');
      assert.equal('recovery' in record, false);
      assert.deepEqual(record.version === 2 && record.wrap, { mode: 'memory' });
    }
  });
});
