import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { hsmContract } from '../../contract/hsm.js';
import { keyholdCode } from '../../helpers/errors.js';

hsmContract('MemoryHsm', () => MemoryHsm.open(), ['aesKeyWrapPad']);

describe('MemoryHsm', () => {
  it('zeroes every key it holds on close, and refuses calls afterwards (ERR_HSM_UNAVAILABLE)', async () => {
    const hsm = await MemoryHsm.open();
    const aes = await hsm.generateKey('zero/aes', 'aes256');
    await hsm.generateKey('zero/hmac', 'hmac-sha256');
    await hsm.generateKey('zero/ec', 'ec-p256');
    // The only way to see key bytes is to reach past the Hsm interface, as an attacker in the heap would.
    const secrets = [...(hsm as unknown as { byLabel: Map<string, { secret: Buffer }> }).byLabel.values()].map((k) => k.secret);
    assert.equal(secrets.length, 3);
    for (const secret of secrets) assert.ok(secret.some((byte) => byte !== 0));
    await hsm.close();
    for (const secret of secrets) assert.ok(secret.every((byte) => byte === 0), 'a key byte survived close()');
    await assert.rejects(hsm.aesGcmEncrypt(aes, Buffer.from('x'), Buffer.alloc(0)), keyholdCode('ERR_HSM_UNAVAILABLE'));
    assert.throws(() => hsm.findKey('zero/aes', 'aes256'), keyholdCode('ERR_HSM_UNAVAILABLE'));
    assert.equal((await hsm.health()).ok, false);
    await hsm.close();
  });

  it('a destroyed key is zeroed at once', async () => {
    const hsm = await MemoryHsm.open();
    const key = await hsm.generateKey('zero/once', 'aes256');
    const [stored] = [...(hsm as unknown as { byLabel: Map<string, { secret: Buffer }> }).byLabel.values()];
    await hsm.destroyKey(key);
    assert.ok(stored?.secret.every((byte) => byte === 0));
    await hsm.close();
  });

  it('each instance is its own token: a key made in one is not found in another', async () => {
    const a = await MemoryHsm.open();
    const b = await MemoryHsm.open();
    await a.generateKey('only-in-a', 'aes256');
    assert.equal(b.findKey('only-in-a', 'aes256'), null);
    assert.notEqual(a.token.serial, b.token.serial);
    await a.close();
    await b.close();
  });
});
