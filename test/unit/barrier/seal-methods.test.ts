/**
 * The seal's methods over MemoryHsm, with capabilities turned off to act as narrower tokens: AES-GCM
 * where the token can, RSA-OAEP (local encryption, device decryption, a device signature binding the
 * record) where it cannot, neither refused; data-object mode; protectRoot; v1 records read unchanged.
 */
import assert from 'node:assert/strict';
import { constants as cryptoConstants, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  SEAL_RECORD_KEY, initializeSeal, protectRoot, unseal, type SealRecord, type SealRecordV2,
} from '../../../src/barrier/seal.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import type { HsmCapabilities } from '../../../src/hsm/types.js';
import { MemoryStorage } from '../../../src/storage/memory.js';
import { flipBit } from '../../helpers/bytes.js';
import { keyholdCode } from '../../helpers/errors.js';

/** What the p11-kit hop leaves of SoftHSM: RSA and EC, no AES-GCM, no HMAC. */
const RSA_EC_ONLY: Array<keyof HsmCapabilities> = ['aesGcm', 'aesKeyWrapPad', 'hmacSha256'];

async function recordOf(storage: MemoryStorage): Promise<SealRecordV2> {
  const raw = await storage.get(SEAL_RECORD_KEY);
  assert.ok(raw);
  const record = JSON.parse(raw.toString('utf8')) as SealRecord;
  assert.equal(record.version, 2);
  return record;
}

async function putRecord(storage: MemoryStorage, record: unknown): Promise<void> {
  await storage.put(SEAL_RECORD_KEY, Buffer.from(JSON.stringify(record)));
}

describe('seal method by probing', () => {
  it('a token with AES-GCM seals with AES-GCM and keeps the HSM wrap key (as before)', async () => {
    const hsm = new MemoryHsm();
    const storage = new MemoryStorage();
    const init = await initializeSeal(storage, hsm);
    const record = await recordOf(storage);
    assert.equal(record.method, 'aes-gcm');
    assert.equal(record.wrap.mode, 'hsm');
    assert.equal(record.publicKeySpki, undefined);
    assert.equal(Buffer.from(record.wrappedRootKey ?? '', 'base64').length, 12 + 32 + 16);
    assert.ok(init.wrapKey);
    assert.ok((await unseal(storage, hsm)).rootKey.equals(init.rootKey));
  });

  it('an RSA/EC-only token seals with RSA-OAEP: an RSA-3072 token key, the public half in the record, material wrapped in memory, no AES key anywhere', async () => {
    const hsm = new MemoryHsm({ withoutCapabilities: RSA_EC_ONLY });
    const storage = new MemoryStorage();
    const init = await initializeSeal(storage, hsm);
    const record = await recordOf(storage);
    assert.equal(record.method, 'rsa-oaep');
    assert.deepEqual(record.wrap, { mode: 'memory' });
    assert.equal(init.wrapKey, null);
    assert.ok(record.publicKeySpki && record.signature);
    assert.equal(record.oaepHash, 'sha256');
    assert.equal(Buffer.from(record.wrappedRootKey ?? '', 'base64').length, 384, 'an RSA-3072 OAEP ciphertext');
    assert.ok(hsm.findKey(record.sealKeyLabel, 'rsa-3072'));
    assert.deepEqual(hsm.listKeys('keyhold/', 'aes256'), []);
    const raw = (await storage.get(SEAL_RECORD_KEY)) as Buffer;
    assert.ok(!raw.includes(init.rootKey) && !raw.toString().includes(init.rootKey.toString('base64')));
    const again = await unseal(storage, hsm);
    assert.ok(again.rootKey.equals(init.rootKey));
    assert.equal(again.generation, 1);
  });

  it('a token with neither is refused at init (ERR_HSM_MECHANISM_UNSUPPORTED), leaving storage and token empty', async () => {
    for (const off of [['aesGcm', 'rsaOaepDecrypt'], ['aesGcm', 'rsaKeyGen'], ['aesGcm', 'rsaPss']] as Array<Array<keyof HsmCapabilities>>) {
      const hsm = new MemoryHsm({ withoutCapabilities: off });
      const storage = new MemoryStorage();
      await assert.rejects(initializeSeal(storage, hsm), keyholdCode('ERR_HSM_MECHANISM_UNSUPPORTED', /neither AES-GCM nor RSA-OAEP/), off.join());
      assert.deepEqual(await storage.list(''), []);
      for (const kind of ['aes256', 'rsa-3072'] as const) assert.deepEqual(hsm.listKeys('', kind), []);
    }
  });
});

describe('RSA-OAEP seal integrity', () => {
  async function rsaStore() {
    const hsm = new MemoryHsm({ withoutCapabilities: RSA_EC_ONLY });
    const storage = new MemoryStorage();
    const init = await initializeSeal(storage, hsm);
    return { hsm, storage, init, record: await recordOf(storage) };
  }

  it('a flipped bit anywhere in the wrapped root key, or a changed generation or OAEP hash, is ERR_BARRIER_INTEGRITY', async () => {
    const { hsm, storage, init, record } = await rsaStore();
    const wrapped = Buffer.from(record.wrappedRootKey ?? '', 'base64');
    for (const byte of [0, 1, 100, 200, 383]) {
      await putRecord(storage, { ...record, wrappedRootKey: flipBit(wrapped, byte * 8 + 3).toString('base64') });
      await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY'), `byte ${byte}`);
    }
    await putRecord(storage, { ...record, rootKeyGeneration: 2 });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY'));
    await putRecord(storage, { ...record, oaepHash: 'sha1' });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY'));
    await putRecord(storage, { ...record, signature: undefined });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY'));
    await putRecord(storage, record);
    assert.ok((await unseal(storage, hsm)).rootKey.equals(init.rootKey));
  });

  it('a root key of an attacker\'s choosing, encrypted with the (public) seal key, is refused, with or without the attacker\'s own key and signature', async () => {
    const { hsm, storage, record } = await rsaStore();
    const chosen = randomBytes(32);
    const publicKey = createPublicKey({ key: Buffer.from(record.publicKeySpki ?? '', 'base64'), format: 'der', type: 'spki' });
    const forged = publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, chosen).toString('base64');
    await putRecord(storage, { ...record, wrappedRootKey: forged });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY', /signature does not verify/));
    // The attacker signs the forged record with a key pair of their own and puts its public half in.
    const own = generateKeyPairSync('rsa', { modulusLength: 3072 });
    const spki = own.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const binding = Buffer.from(JSON.stringify(['keyhold/seal/root-key/v2', 'rsa-oaep', record.sealKeyLabel, spki, 'sha256', 1, forged]), 'utf8');
    const signature = sign('sha256', binding, { key: own.privateKey, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString('base64');
    await putRecord(storage, { ...record, publicKeySpki: spki, wrappedRootKey: forged, signature });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY', /public key is not that of HSM key/));
  });

  it('another store\'s record on this token (its seal key missing) is ERR_HSM_KEY_MISSING', async () => {
    const a = await rsaStore();
    const b = await rsaStore();
    await putRecord(a.storage, b.record);
    await assert.rejects(unseal(a.storage, a.hsm), keyholdCode('ERR_HSM_KEY_MISSING'));
  });
});

describe('data-object mode', () => {
  for (const [name, off] of [['AES-GCM', []], ['RSA-OAEP', RSA_EC_ONLY]] as Array<[string, Array<keyof HsmCapabilities>]>) {
    it(`${name}: the wrapped root key is a token data object, not in storage; without it unseal fails clearly and writes nothing`, async () => {
      const hsm = new MemoryHsm({ withoutCapabilities: off });
      const storage = new MemoryStorage();
      const init = await initializeSeal(storage, hsm, { dataObject: true });
      const record = await recordOf(storage);
      assert.equal(record.wrappedRootKey, undefined);
      assert.match(record.rootKeyObject ?? '', /^keyhold\/seal\/root\/[0-9a-f]{8}$/);
      const stored = await hsm.getDataObject(record.rootKeyObject as string);
      assert.ok(stored && stored.length >= 60);
      assert.ok(!stored.includes(init.rootKey));
      assert.ok((await unseal(storage, hsm)).rootKey.equals(init.rootKey));
      const before = await storage.get(SEAL_RECORD_KEY);
      await hsm.destroyDataObject(record.rootKeyObject as string);
      await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_HSM_KEY_MISSING', /data object "keyhold\/seal\/root\/[0-9a-f]{8}", which holds this store's wrapped root key, is not in token/));
      assert.deepEqual(await storage.list(''), [SEAL_RECORD_KEY]);
      assert.deepEqual(await storage.get(SEAL_RECORD_KEY), before);
    });
  }
});

describe('protectRoot', () => {
  it('on the same token: reuses the seal key, keeps the wrap and data-object mode, makes a new data object; discard removes only what it made', async () => {
    for (const off of [[], RSA_EC_ONLY] as Array<Array<keyof HsmCapabilities>>) {
      const hsm = new MemoryHsm({ withoutCapabilities: off });
      const storage = new MemoryStorage();
      await initializeSeal(storage, hsm, { dataObject: true });
      const previous = await recordOf(storage);
      const rootKey = randomBytes(32);
      const { record, discard } = await protectRoot(hsm, rootKey, 2, previous);
      assert.equal(record.version, 2);
      if (record.version !== 2) return;
      assert.equal(record.method, previous.method);
      assert.equal(record.sealKeyLabel, previous.sealKeyLabel);
      assert.deepEqual(record.wrap, previous.wrap);
      assert.equal(record.rootKeyGeneration, 2);
      assert.ok(record.rootKeyObject && record.rootKeyObject !== previous.rootKeyObject);
      assert.equal(await storage.get(SEAL_RECORD_KEY).then((raw) => JSON.parse(String(raw)).rootKeyGeneration), 1, 'no storage write');
      // Written as the caller would, it unseals to the new root key.
      const other = new MemoryStorage();
      await putRecord(other, record);
      const opened = await unseal(other, hsm);
      assert.ok(opened.rootKey.equals(rootKey));
      assert.equal(opened.generation, 2);
      await discard();
      assert.equal(await hsm.getDataObject(record.rootKeyObject), null);
      assert.ok(await hsm.getDataObject(previous.rootKeyObject as string), 'the previous data object stays');
      assert.ok(hsm.findKey(previous.sealKeyLabel, previous.method === 'aes-gcm' ? 'aes256' : 'rsa-3072'), 'the reused seal key stays');
    }
  });

  it('on another, RSA/EC-only token: seals by that token\'s probe with a new key; discard destroys it', async () => {
    const aes = new MemoryHsm();
    const storage = new MemoryStorage();
    await initializeSeal(storage, aes);
    const previous = await recordOf(storage);
    const rsa = new MemoryHsm({ withoutCapabilities: RSA_EC_ONLY });
    const rootKey = randomBytes(32);
    const { record, discard } = await protectRoot(rsa, rootKey, 1, previous, { wrap: { mode: 'memory' } });
    assert.equal(record.version === 2 && record.method, 'rsa-oaep');
    assert.deepEqual(record.version === 2 && record.wrap, { mode: 'memory' });
    assert.equal(record.tokenSerial, rsa.token.serial);
    const other = new MemoryStorage();
    await putRecord(other, record);
    assert.ok((await unseal(other, rsa)).rootKey.equals(rootKey));
    await discard();
    assert.equal(rsa.findKey(record.sealKeyLabel, 'rsa-3072'), null);
  });

  it('a failure half-way leaves nothing in the token', async () => {
    const hsm = new MemoryHsm();
    const storage = new MemoryStorage();
    await initializeSeal(storage, hsm, { dataObject: true });
    const previous = await recordOf(storage);
    const keysBefore = hsm.listKeys('', 'aes256').length;
    // The data object's label is taken: the seal key is made on another token serial, so it is new.
    const put = hsm.putDataObject.bind(hsm);
    hsm.putDataObject = async () => { throw new Error('token full'); };
    await assert.rejects(protectRoot(hsm, randomBytes(32), 2, { ...previous, tokenSerial: 'elsewhere' }), /token full/);
    hsm.putDataObject = put;
    assert.equal(hsm.listKeys('', 'aes256').length, keysBefore);
  });
});

describe('version 1 records', () => {
  it('are read unchanged: AES-GCM under the v1 AAD, both keys in the token', async () => {
    const hsm = new MemoryHsm();
    const seal = await hsm.generateKey('keyhold/seal/v1store', 'aes256');
    const wrap = await hsm.generateKey('keyhold/wrap/v1store', 'aes256');
    const rootKey = randomBytes(32);
    const wrappedRootKey = (await hsm.aesGcmEncrypt(seal, rootKey, Buffer.from('keyhold/seal/root-key/v1', 'utf8'))).toString('base64');
    const storage = new MemoryStorage();
    await putRecord(storage, { version: 1, sealKeyLabel: seal.label, wrapKeyLabel: wrap.label, wrappedRootKey, tokenSerial: hsm.token.serial, createdAt: new Date().toISOString() });
    const opened = await unseal(storage, hsm);
    assert.ok(opened.rootKey.equals(rootKey));
    assert.deepEqual(opened.wrap, { mode: 'hsm', keyLabel: wrap.label });
    assert.equal(opened.wrapKey?.label, wrap.label);
    assert.equal(opened.generation, 1);
    await putRecord(storage, { version: 3, sealKeyLabel: seal.label });
    await assert.rejects(unseal(storage, hsm), keyholdCode('ERR_BARRIER_INTEGRITY'));
  });
});
