import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HsmKey } from '../../../src/hsm/types.js';
import { Pkcs11Hsm } from '../../../src/hsm/pkcs11-hsm.js';
import { algorithmOf } from '../../../src/keys/algorithms.js';
import { InMemoryKeyMaterial } from '../../../src/keys/in-memory-material.js';
import { factsOf, publicKeyOf } from '../../../src/keys/key-material.js';
import { materialAad } from '../../../src/keys/protection/wrapped.js';
import { schemeOf, type Custody } from '../../../src/keys/protection/scheme.js';
import type { KeyType, Protection } from '../../../src/keys/types.js';
import { keyMaterialContract, type MaterialUnderTest } from '../../contract/key-material.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { code } from './support.js';
import { hsmMaterialWrapper } from '../../../src/keys/protection/wrapper.js';

// One SoftHSM token per file (SOFTHSM2_CONF is process-wide), made before the module is opened.
const token = makeSoftHsmToken('keyhold-key-material');
let hsm: Pkcs11Hsm;
let custody: Custody;
let wrapKey: HsmKey;

before(async () => {
  hsm = await Pkcs11Hsm.open(token.config);
  wrapKey = await hsm.findOrCreateKey('keyhold-test/wrap', 'aes256');
  custody = { hsm, wrapper: hsmMaterialWrapper(hsm, wrapKey) };
});

after(async () => {
  await hsm.close();
  fs.rmSync(token.dir, { recursive: true, force: true });
});

/** A new key version made and loaded the way keyhold does it, by the protection's scheme. */
async function versionOf(type: KeyType, protection: Protection): Promise<MaterialUnderTest> {
  const scheme = schemeOf(protection);
  const record = { id: randomBytes(12).toString('hex'), name: `contract-${type}`, type };
  const pending = await scheme.prepare(custody, record, 1);
  const entry = await pending.entryFor(1).finally(() => pending.release());
  const material = await scheme.load(custody, record, entry);
  const subject: MaterialUnderTest = { material, publicKey: publicKeyOf(entry), oaepHash: entry.oaepHash };
  if (entry.wrappedMaterial && algorithmOf(type).family === 'aes') {
    subject.rawSecret = await hsm.aesGcmDecrypt(wrapKey, Buffer.from(entry.wrappedMaterial, 'base64'), materialAad(record.id, 1));
  }
  return subject;
}

// The HSM implementation: a non-extractable object on a real SoftHSM token.
keyMaterialContract('HsmKeyMaterial on SoftHSM2', (type) => versionOf(type, 'hsm'));
// The in-memory implementation: wrapped material, unwrapped by the same token.
keyMaterialContract('InMemoryKeyMaterial (wrapped)', (type) => versionOf(type, 'wrapped'));

describe('InMemoryKeyMaterial', () => {
  it('zeroes the raw secret it was made from, and keeps working from its own copy', async () => {
    const raw = randomBytes(32);
    const copy = Buffer.from(raw);
    const material = InMemoryKeyMaterial.fromRaw(factsOf({ name: 'zeroed', type: 'hmac-sha256' }, { version: 1, createdAt: '' }), raw);
    assert.deepEqual(raw, Buffer.alloc(32), 'the raw secret is still in the heap');
    const tag = await material.sign(Buffer.from('x'));
    const again = InMemoryKeyMaterial.fromRaw(factsOf({ name: 'zeroed', type: 'hmac-sha256' }, { version: 1, createdAt: '' }), copy);
    assert.deepEqual(await again.sign(Buffer.from('x')), tag);
  });

  it('zeroes the raw secret even when it is not a valid key', () => {
    const raw = randomBytes(40);
    assert.throws(() => InMemoryKeyMaterial.fromRaw(factsOf({ name: 'bad', type: 'ec-p256' }, { version: 1, createdAt: '' }), raw));
    assert.deepEqual(raw, Buffer.alloc(40));
  });
});

describe('protection schemes', () => {
  it('hsm: a version whose token object is gone does not load (ERR_HSM_KEY_MISSING)', async () => {
    const scheme = schemeOf('hsm');
    const record = { id: randomBytes(12).toString('hex'), name: 'gone', type: 'aes256-gcm' as const };
    const pending = await scheme.prepare(custody, record, 1);
    const entry = await pending.entryFor(1);
    await scheme.destroy(custody, record, [entry]);
    await assert.rejects(scheme.load(custody, record, entry), code('ERR_HSM_KEY_MISSING'));
  });

  it('wrapped: material loads only under the key id and version it was wrapped for', async () => {
    const scheme = schemeOf('wrapped');
    const record = { id: randomBytes(12).toString('hex'), name: 'bound', type: 'aes256-gcm' as const };
    const pending = await scheme.prepare(custody, record, 1);
    const entry = await pending.entryFor(1).finally(() => pending.release());
    await assert.rejects(scheme.load(custody, record, { ...entry, version: 2 }), code('ERR_CIPHERTEXT_INVALID'));
    await assert.rejects(scheme.load(custody, { ...record, id: randomBytes(12).toString('hex') }, entry), code('ERR_CIPHERTEXT_INVALID'));
    await scheme.load(custody, record, entry);
  });
});
