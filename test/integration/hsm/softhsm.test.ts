import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HsmConfig } from '../../../src/hsm/config.js';
import { Pkcs11Hsm } from '../../../src/hsm/pkcs11-hsm.js';
import type { HsmKeyKind } from '../../../src/hsm/types.js';
import { hsmContract } from '../../contract/hsm.js';
import { keyholdCode } from '../../helpers/errors.js';
import { makeSoftHsmToken, readPin } from '../../helpers/softhsm.js';
import { assertOnlyNonExtractableKeys, parseListedObjects, pkcs11Tool as pkcs11ToolRun } from '../../helpers/pkcs11-tool.js';

// One token for this file (this process): SOFTHSM2_CONF is process-wide. The PKCS#11 library is
// initialised process-wide too, so every block opens and closes its adapter sequentially.
const token = makeSoftHsmToken('keyhold-softhsm-test');
after(() => fs.rmSync(token.dir, { recursive: true, force: true }));

async function withHsm<T>(config: HsmConfig, fn: (hsm: Pkcs11Hsm) => Promise<T>): Promise<T> {
  const hsm = await Pkcs11Hsm.open(config);
  try {
    return await fn(hsm);
  } finally {
    await hsm.close();
  }
}

function pkcs11Tool(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return pkcs11ToolRun(token.module, token.confPath, ['--token-label', token.label, ...args]);
}

hsmContract('Pkcs11Hsm on SoftHSM2', () => Pkcs11Hsm.open(token.config));

describe('Pkcs11Hsm on SoftHSM2', () => {
  it('leaves only sensitive, never-extractable private/secret key objects on the token (checked with opensc)', async () => {
    const kinds: HsmKeyKind[] = ['aes256', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048'];
    const labels = new Map<HsmKeyKind, string>(kinds.map((kind) => [kind, `opensc-check-${kind}`]));
    await withHsm(token.config, async (hsm) => {
      for (const kind of kinds) await hsm.generateKey(labels.get(kind) as string, kind);
    });

    const listed = pkcs11Tool('--login', '--pin', readPin(token), '--list-objects');
    assert.equal(listed.status, 0, listed.stderr);
    const objects = parseListedObjects(listed.stdout);
    assert.ok(objects.length >= kinds.length, `expected at least ${kinds.length} objects in:\n${listed.stdout}`);
    for (const label of labels.values()) {
      assert.ok(objects.some((o) => o.label === label), `${label} not listed:\n${listed.stdout}`);
    }
    assertOnlyNonExtractableKeys(objects);

    // The AES key's value cannot be read out, whatever the tool tries.
    const read = pkcs11Tool('--login', '--pin', readPin(token), '--read-object', '--type', 'secrkey', '--label', labels.get('aes256') as string);
    assert.notEqual(read.status, 0, `reading the AES key value succeeded:\n${read.stdout}`);
    assert.equal(read.stdout.length, 0, 'pkcs11-tool wrote key material to stdout');
    assert.match(read.stderr, /CKR_ATTRIBUTE_SENSITIVE/, `refused for another reason: ${read.stderr}`);
  });

  it('rejects a wrong PIN at once (ERR_HSM_PIN_INCORRECT) without locking the token', async () => {
    const wrongPinFile = path.join(token.dir, 'wrong-pin');
    fs.writeFileSync(wrongPinFile, `${readPin(token)}x\n`, { mode: 0o600 });
    const started = Date.now();
    await assert.rejects(Pkcs11Hsm.open({ ...token.config, pinFile: wrongPinFile }), keyholdCode('ERR_HSM_PIN_INCORRECT'));
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2000, `wrong PIN took ${elapsed} ms to reject`);
    // The correct PIN still works: the token is not locked.
    await withHsm(token.config, async (hsm) => {
      assert.equal((await hsm.health()).ok, true);
      const key = hsm.findKey('opensc-check-aes256', 'aes256') ?? await hsm.generateKey('pin-check-aes256', 'aes256');
      const aad = Buffer.from('after wrong pin');
      assert.deepEqual(await hsm.aesGcmDecrypt(key, await hsm.aesGcmEncrypt(key, Buffer.from('ok'), aad), aad), Buffer.from('ok'));
    });
  });

  it('reports configuration errors with their codes', async () => {
    await assert.rejects(
      Pkcs11Hsm.open({ ...token.config, module: path.join(token.dir, 'no-such-module.so') }),
      keyholdCode('ERR_HSM_MODULE'),
    );
    await assert.rejects(Pkcs11Hsm.open({ ...token.config, tokenLabel: 'keyhold-no-such-token' }), keyholdCode('ERR_HSM_TOKEN_NOT_FOUND'));
    const unsetEnv = `KEYHOLD_TEST_UNSET_PIN_${process.pid}`;
    delete process.env[unsetEnv];
    await assert.rejects(
      Pkcs11Hsm.open({ module: token.module, tokenLabel: token.label, pinEnv: unsetEnv }),
      keyholdCode('ERR_CONFIG'),
    );
    // After all those failures the token still opens.
    await withHsm(token.config, async (hsm) => assert.equal((await hsm.health()).ok, true));
  });

  it('selects the token by slot id', async () => {
    const first = await withHsm(token.config, async (hsm) => {
      await hsm.generateKey('slot-check-hmac', 'hmac-sha256');
      return hsm.token;
    });
    assert.equal(first.label, token.label);
    assert.match(first.slotId, /^\d+$/);
    await withHsm({ module: token.module, slot: first.slotId, pinFile: token.pinFile }, async (hsm) => {
      assert.deepEqual(hsm.token, first);
      const key = hsm.findKey('slot-check-hmac', 'hmac-sha256');
      assert.ok(key, 'key generated earlier not found through the slot id');
      assert.equal((await hsm.hmacSha256(key, Buffer.from('slot'))).length, 32);
    });
    await assert.rejects(
      Pkcs11Hsm.open({ module: token.module, slot: '4294967295999', pinFile: token.pinFile }),
      keyholdCode('ERR_HSM_TOKEN_NOT_FOUND'),
    );
  });

  it('on a decrypt-only token, encrypts RSA-OAEP locally with the public key and decrypts on the device', async () => {
    const hsm = await Pkcs11Hsm.open(token.config, { withoutCapabilities: ['rsaOaepEncryptOnDevice'] });
    try {
      const { createPublicKey } = await import('node:crypto');
      const key = await hsm.generateKey(`decrypt-only-${process.pid}`, 'rsa-2048');
      const publicKey = createPublicKey({ key: key.publicKeySpki as Buffer, format: 'der', type: 'spki' });
      const hash = await hsm.probeOaepHash(key, publicKey);
      const before = hsm.callCount;
      const ciphertext = await hsm.rsaEncrypt(key, publicKey, Buffer.from('only the token can read this'), hash);
      assert.equal(hsm.callCount, before, 'encryption made no HSM call');
      assert.equal((await hsm.rsaDecrypt(key, ciphertext, hash)).toString(), 'only the token can read this');
      assert.equal(hsm.callCount, before + 1, 'decryption was one HSM call');
      await hsm.destroyKey(key);
    } finally {
      await hsm.close();
    }
  });

  it('finds an existing key by label or creates it', async () => {
    await withHsm(token.config, async (hsm) => {
      const label = `find-or-create-${process.pid}`;
      const created = await hsm.findOrCreateKey(label, 'aes256');
      const found = await hsm.findOrCreateKey(label, 'aes256');
      assert.ok(hsm.objectId(created).equals(hsm.objectId(found)));
      assert.equal(hsm.attributes(found).extractable, false);
      await hsm.destroyKey(found);
    });
  });

  it('probes the capabilities SoftHSM2 has', async () => {
    await withHsm(token.config, async (hsm) => {
      const { aesGcm, hmacSha256, ecdsa, rsaPss, rsaOaepDecrypt } = hsm.capabilities;
      assert.deepEqual({ aesGcm, hmacSha256, ecdsa, rsaPss, rsaOaepDecrypt }, { aesGcm: true, hmacSha256: true, ecdsa: true, rsaPss: true, rsaOaepDecrypt: true });
    });
  });
});
