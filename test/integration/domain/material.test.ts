import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { initializeSeal } from '../../../src/barrier/seal.js';
import { Pkcs11Hsm } from '../../../src/hsm/pkcs11-hsm.js';
import type { KeysContext } from '../../../src/keys/context.js';
import { decrypt, encrypt } from '../../../src/keys/encrypt.js';
import { createKey } from '../../../src/keys/lifecycle.js';
import { MaterialCache } from '../../../src/keys/material.js';
import { KeyRecordStore } from '../../../src/keys/record-store.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { tempDir } from '../../helpers/temp.js';

const token = makeSoftHsmToken('keyhold-domain-material');
const dbDir = tempDir('keyhold-domain-material-');
let hsm: Pkcs11Hsm;
let storage: SqliteStorage;
let material: MaterialCache;
let ctx: KeysContext;

before(async () => {
  hsm = await Pkcs11Hsm.open(token.config);
  storage = SqliteStorage.open(path.join(dbDir, 'keyhold.db'));
  const { rootKey, wrapKey } = await initializeSeal(storage, hsm);
  const barrier = new Barrier(storage, rootKey);
  // A 1 s lifetime: the sweeper runs every second.
  material = new MaterialCache(hsm, wrapKey, 1000);
  ctx = { barrier, hsm, wrapKey, records: new KeyRecordStore(barrier), material };
});

after(async () => {
  material.clear();
  await hsm.close();
  await storage.close();
  fs.rmSync(dbDir, { recursive: true, force: true });
  fs.rmSync(token.dir, { recursive: true, force: true });
});

describe('unwrapped key material', () => {
  it('is unwrapped once per lifetime, and dropped after it even when the key is not used again', async () => {
    await createKey(ctx, { name: 'short-lived', type: 'aes256-gcm', protection: 'wrapped' });
    const before = hsm.callCount;
    const { ciphertext } = await encrypt(ctx, 'short-lived', Buffer.from('a'));
    await decrypt(ctx, 'short-lived', ciphertext);
    assert.equal(hsm.callCount - before, 1, 'one HSM unwrap serves both operations');

    const entries = (material as unknown as { entries: Map<string, unknown> }).entries;
    assert.equal(entries.size, 1);
    await new Promise((resolve) => setTimeout(resolve, 2300));
    assert.equal(entries.size, 0, 'expired material is still held with no request to evict it');

    await decrypt(ctx, 'short-lived', ciphertext);
    assert.equal(hsm.callCount - before, 2, 'after expiry the material is unwrapped again');
  });
});
