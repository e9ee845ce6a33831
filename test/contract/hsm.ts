import { constants as cryptoConstants, createPublicKey, publicEncrypt, randomBytes, verify, type KeyObject } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { GeneratedHsmKey, Hsm, HsmCapabilities, HsmKey, HsmKeyKind } from '../../src/hsm/types.js';
import { flipBit } from '../helpers/bytes.js';
import { keyholdCode } from '../helpers/errors.js';

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
/** Generation above this is skipped for rsa-4096 (it is reported as skipped, not failed). */
const RSA_4096_BUDGET_MS = 10_000;

/**
 * The behaviour every Hsm implementation must have. One Hsm is opened for the whole block and
 * closed at its end; every key it creates carries a per-run label and is destroyed again, so the
 * contract can run against a token that already holds other keys. `lacking`: the capabilities this
 * token is known not to have; the tests that need one skip by the probe, so the probe is checked
 * against it first (a probe gone wrong would otherwise skip tests silently).
 */
export function hsmContract(name: string, open: () => Promise<Hsm>, lacking: ReadonlyArray<keyof HsmCapabilities> = []): void {
  describe(`${name} HSM contract`, () => {
    const run = randomBytes(4).toString('hex');
    const label = (what: string): string => `contract-${run}-${what}`;
    let hsm: Hsm;
    const created = new Map<string, HsmKey>();
    /** rsa-4096 generation that outlived its budget: awaited (and its key destroyed) before close. */
    const stragglers: Array<Promise<unknown>> = [];
    const generated = new Map<HsmKeyKind, Promise<GeneratedHsmKey>>();

    async function generate(what: string, kind: HsmKeyKind): Promise<GeneratedHsmKey> {
      const key = await hsm.generateKey(label(what), kind);
      created.set(key.label, key);
      return key;
    }

    /** One key per kind, generated on first use so a test can run alone (`--test-name-pattern`). */
    function keyOf(kind: HsmKeyKind): Promise<GeneratedHsmKey> {
      let key = generated.get(kind);
      if (!key) {
        key = generate(kind, kind);
        generated.set(kind, key);
      }
      return key;
    }

    function spkiOf(key: GeneratedHsmKey): KeyObject {
      assert.ok(key.publicKeySpki, `${key.kind} key came back without its public key`);
      return createPublicKey({ key: key.publicKeySpki, format: 'der', type: 'spki' });
    }

    /**
     * Skips a test the token cannot run, by what it probed (never by its name): through a p11-kit
     * hop a SoftHSM token has no AES-GCM, like an RSA/EC-only device.
     */
    function lacks(t: TestContext, ...needs: Array<keyof Hsm['capabilities']>): boolean {
      const missing = needs.filter((c) => !hsm.capabilities[c]);
      if (missing.length === 0) return false;
      t.skip(`the token lacks ${missing.join(', ')}`);
      return true;
    }

    /** Several round trips at once, so that every session in the pool is borrowed at least once (AES-GCM, else ECDSA). */
    async function assertPoolHealthy(key: HsmKey): Promise<void> {
      if (!hsm.capabilities.aesGcm) {
        const ec = await keyOf('ec-p256');
        await Promise.all(Array.from({ length: 16 }, async (_, i) => {
          const data = randomBytes(i * 7);
          assert.equal(verify('sha256', data, { key: spkiOf(ec), dsaEncoding: 'ieee-p1363' }, await hsm.sign(ec, data)), true);
        }));
        return;
      }
      await Promise.all(Array.from({ length: 16 }, async (_, i) => {
        const plaintext = randomBytes(i * 7);
        const aad = Buffer.from(`pool-check-${i}`);
        const back = await hsm.aesGcmDecrypt(key, await hsm.aesGcmEncrypt(key, plaintext, aad), aad);
        assert.deepEqual(back, plaintext);
      }));
    }

    function assertNonExtractable(key: HsmKey): void {
      assert.deepEqual(hsm.attributes(key), {
        token: true,
        private: true,
        sensitive: true,
        extractable: false,
        neverExtractable: true,
        alwaysSensitive: true,
        valueReadRefused: true,
      }, `${key.kind} key attributes`);
    }

    async function assertRsaPssVerifies(key: GeneratedHsmKey): Promise<void> {
      const data = randomBytes(100);
      const signature = await hsm.sign(key, data);
      const options = { key: spkiOf(key), padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      assert.equal(verify('sha256', data, options, signature), true, `${key.kind} PSS signature does not verify`);
      assert.equal(verify('sha256', Buffer.concat([data, Buffer.from([0])]), options, signature), false);
    }

    before(async () => {
      hsm = await open();
    });

    after(async () => {
      await Promise.allSettled(stragglers);
      for (const key of created.values()) {
        await hsm.destroyKey(key).catch(() => { /* best effort */ });
      }
      await hsm?.close();
    });

    it(`probes every capability${lacking.length ? ` but ${lacking.join(', ')}` : ''}`, () => {
      const missing = (Object.keys(hsm.capabilities) as Array<keyof HsmCapabilities>).filter((c) => !hsm.capabilities[c]);
      assert.deepEqual(missing.sort(), [...lacking].sort());
    });

    describe('key generation', () => {
      for (const kind of ['aes256', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048'] as const) {
        it(`generates ${kind} as a sensitive, never-extractable token key`, async (t: TestContext) => {
          if (kind === 'hmac-sha256' && lacks(t, 'hmacSha256')) return;
          const key = await keyOf(kind);
          assert.equal(key.kind, kind);
          assert.equal(key.label, label(kind));
          assert.equal((key as { handle?: unknown }).handle, undefined, 'no object handle leaves the adapter');
          if (kind === 'aes256' || kind === 'hmac-sha256') assert.equal(key.publicKeySpki, undefined);
          else {
            const pub = spkiOf(key);
            assert.equal(pub.type, 'public');
            assert.equal(pub.asymmetricKeyType, kind.startsWith('ec') ? 'ec' : 'rsa');
          }
          assertNonExtractable(key);
        });
      }

      it('generates rsa-3072 (once) and signs with it', async (t: TestContext) => {
        if (lacks(t, 'rsaKeyGen', 'rsaPss')) return;
        const key = await generate('rsa-3072', 'rsa-3072');
        assert.equal(spkiOf(key).asymmetricKeyDetails?.modulusLength, 3072);
        assertNonExtractable(key);
        await assertRsaPssVerifies(key);
      });

      it(`generates rsa-4096 (once, skipped beyond ${RSA_4096_BUDGET_MS / 1000} s) and signs with it`, async (t: TestContext) => {
        if (lacks(t, 'rsaKeyGen', 'rsaPss')) return;
        const pending = generate('rsa-4096', 'rsa-4096');
        let timer: NodeJS.Timeout | undefined;
        const budget = new Promise<'slow'>((resolve) => { timer = setTimeout(() => resolve('slow'), RSA_4096_BUDGET_MS); });
        const first = await Promise.race([pending, budget]);
        clearTimeout(timer);
        if (first === 'slow') {
          stragglers.push(pending.catch(() => undefined));
          t.skip(`rsa-4096 generation took more than ${RSA_4096_BUDGET_MS / 1000} s on this token`);
          return;
        }
        assert.equal(spkiOf(first).asymmetricKeyDetails?.modulusLength, 4096);
        assertNonExtractable(first);
        await assertRsaPssVerifies(first);
      });

      it('refuses to generate over an existing label (ERR_CONFLICT)', async () => {
        const aes = await keyOf('aes256');
        await assert.rejects(hsm.generateKey(aes.label, 'aes256'), keyholdCode('ERR_CONFLICT'));
        const ec = await keyOf('ec-p256');
        await assert.rejects(hsm.generateKey(ec.label, 'ec-p256'), keyholdCode('ERR_CONFLICT'));
        // The refused attempts changed nothing: the originals still work.
        await assertPoolHealthy(aes);
      });

      it('findKey finds a generated key by label and returns null for unknown labels', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        for (const kind of ['aes256', 'hmac-sha256', 'ec-p256', 'rsa-2048'] as const) {
          const key = await keyOf(kind);
          const found = hsm.findKey(key.label, kind);
          assert.ok(found, `findKey did not find ${kind}`);
          assert.equal(found.label, key.label);
          assert.equal(found.kind, kind);
          assert.ok(hsm.objectId(found).equals(hsm.objectId(key)), 'the same object');
        }
        assert.equal(hsm.findKey(label('never-generated'), 'aes256'), null);
        assert.equal(hsm.findKey(label('never-generated'), 'ec-p256'), null);
        assert.equal(hsm.findKey(label('never-generated'), 'rsa-2048'), null);
      });

      it('listKeys finds keys by label prefix and kind only; objectId tells same-label keys apart', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        const a = await generate('listed/v1', 'aes256');
        const b = await generate('listed/v2', 'aes256');
        await generate('listed-other', 'hmac-sha256');
        const labels = hsm.listKeys(label('listed/'), 'aes256').map((k) => k.label).sort();
        assert.deepEqual(labels, [a.label, b.label].sort());
        assert.deepEqual(hsm.listKeys(label('listed/'), 'hmac-sha256'), []);
        assert.deepEqual(hsm.listKeys(label('nothing-here/'), 'aes256'), []);
        const idA = hsm.objectId(a);
        assert.ok(idA.length >= 8, 'CKA_ID is set');
        assert.ok(!idA.equals(hsm.objectId(b)));
        // A key destroyed and generated again under the same label gets a different id.
        await hsm.destroyKey(a);
        created.delete(a.label);
        const again = await generate('listed/v1', 'aes256');
        assert.ok(!hsm.objectId(again).equals(idA));
      });

      it('many keys generated and destroyed at once, alongside crypto calls, all succeed', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        // SoftHSM's object store races on concurrent object writes (CKR_GENERAL_ERROR or
        // CKR_TEMPLATE_INCONSISTENT in 1–6 of 160 generations before writes were queued).
        const hmacKey = await keyOf('hmac-sha256');
        const kinds: HsmKeyKind[] = ['aes256', 'hmac-sha256', 'ec-p256'];
        for (let round = 0; round < 10; round++) {
          const keys = await Promise.all([
            ...Array.from({ length: 16 }, (_, i) => generate(`burst-${round}-${i}`, kinds[i % 3] as HsmKeyKind)),
            ...Array.from({ length: 16 }, () => hsm.hmacSha256(hmacKey, randomBytes(32)).then(() => null)),
          ]);
          await Promise.all(keys.filter((k): k is GeneratedHsmKey => k !== null).map(async (key) => {
            await hsm.destroyKey(key);
            created.delete(key.label);
            assert.equal(hsm.findKey(key.label, key.kind), null);
          }));
        }
      });

      it('destroyKey removes the key: findKey then returns null', async () => {
        const key = await generate('doomed', 'aes256');
        assert.ok(hsm.findKey(key.label, 'aes256'));
        await hsm.destroyKey(key);
        created.delete(key.label);
        assert.equal(hsm.findKey(key.label, 'aes256'), null);
        const pair = await generate('doomed-ec', 'ec-p256');
        await hsm.destroyKey(pair);
        created.delete(pair.label);
        assert.equal(hsm.findKey(pair.label, 'ec-p256'), null);
        // The label is free again.
        const again = await generate('doomed', 'aes256');
        assert.ok(hsm.findKey(again.label, 'aes256'));
      });
    });

    describe('AES-256-GCM', () => {
      for (const size of [0, 1, 32, 1024, 65536]) {
        it(`round-trips ${size} bytes with AAD`, async (t: TestContext) => {
          if (lacks(t, 'aesGcm')) return;
          const key = await keyOf('aes256');
          const plaintext = randomBytes(size);
          const aad = Buffer.from(`aad-${size}`);
          const blob = await hsm.aesGcmEncrypt(key, plaintext, aad);
          assert.equal(blob.length, GCM_IV_BYTES + size + GCM_TAG_BYTES);
          assert.deepEqual(await hsm.aesGcmDecrypt(key, blob, aad), plaintext);
        });
      }

      it('round-trips with an empty AAD', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const plaintext = Buffer.from('no associated data');
        assert.deepEqual(await hsm.aesGcmDecrypt(key, await hsm.aesGcmEncrypt(key, plaintext, Buffer.alloc(0)), Buffer.alloc(0)), plaintext);
      });

      it('two encryptions of the same plaintext differ', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const plaintext = Buffer.from('same plaintext');
        const aad = Buffer.from('aad');
        const a = await hsm.aesGcmEncrypt(key, plaintext, aad);
        const b = await hsm.aesGcmEncrypt(key, plaintext, aad);
        assert.notDeepEqual(a.subarray(0, GCM_IV_BYTES), b.subarray(0, GCM_IV_BYTES));
        assert.notDeepEqual(a, b);
      });

      it('rejects a flipped bit in iv, body or tag (ERR_CIPHERTEXT_INVALID) and the pool still works', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const aad = Buffer.from('tamper-aad');
        const blob = await hsm.aesGcmEncrypt(key, randomBytes(32), aad);
        // Every byte of iv(12) ‖ body(32) ‖ tag(16), a different bit each time.
        for (let byte = 0; byte < blob.length; byte++) {
          const bit = 7 - ((byte * 3) % 8);
          await assert.rejects(hsm.aesGcmDecrypt(key, flipBit(blob, byte * 8 + bit), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `byte ${byte} bit ${bit}`);
        }
        await assertPoolHealthy(key);
      });

      it('rejects a flipped bit in a large ciphertext and the pool still works', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const aad = Buffer.from('tamper-aad');
        const blob = await hsm.aesGcmEncrypt(key, randomBytes(65536), aad);
        for (const byte of [0, 11, 12, 13, 4096, 32768, blob.length - GCM_TAG_BYTES - 1, blob.length - GCM_TAG_BYTES, blob.length - 1]) {
          await assert.rejects(hsm.aesGcmDecrypt(key, flipBit(blob, byte * 8), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `byte ${byte}`);
        }
        await assertPoolHealthy(key);
      });

      it('rejects a wrong AAD (ERR_CIPHERTEXT_INVALID) and the pool still works', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const plaintext = randomBytes(64);
        const blob = await hsm.aesGcmEncrypt(key, plaintext, Buffer.from('right'));
        await assert.rejects(hsm.aesGcmDecrypt(key, blob, Buffer.from('wrong')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        await assert.rejects(hsm.aesGcmDecrypt(key, blob, Buffer.alloc(0)), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        await assert.rejects(hsm.aesGcmDecrypt(key, blob, Buffer.from('righ')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        await assertPoolHealthy(key);
        assert.deepEqual(await hsm.aesGcmDecrypt(key, blob, Buffer.from('right')), plaintext);
      });

      it('rejects a truncated blob (ERR_CIPHERTEXT_INVALID) and the pool still works', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const aad = Buffer.from('truncate');
        const blob = await hsm.aesGcmEncrypt(key, randomBytes(48), aad);
        for (const length of [0, 1, GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES - 1, GCM_IV_BYTES + GCM_TAG_BYTES, blob.length - GCM_TAG_BYTES, blob.length - 1]) {
          await assert.rejects(hsm.aesGcmDecrypt(key, blob.subarray(0, length), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `length ${length}`);
        }
        // An empty plaintext's blob is exactly iv ‖ tag: cutting one byte must fail too.
        const empty = await hsm.aesGcmEncrypt(key, Buffer.alloc(0), aad);
        await assert.rejects(hsm.aesGcmDecrypt(key, empty.subarray(0, empty.length - 1), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        await assertPoolHealthy(key);
      });

      it('rejects a blob encrypted under another key (ERR_CIPHERTEXT_INVALID)', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const other = await generate('aes-other', 'aes256');
        const aad = Buffer.from('aad');
        const blob = await hsm.aesGcmEncrypt(other, Buffer.from('secret'), aad);
        await assert.rejects(hsm.aesGcmDecrypt(key, blob, aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        await assertPoolHealthy(key);
      });

      it('200 concurrent encrypt+decrypt calls all succeed (pool contention)', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await keyOf('aes256');
        const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
          const plaintext = randomBytes(1 + (i % 97) * 13);
          const aad = Buffer.from(`concurrent-${i}`);
          const back = await hsm.aesGcmDecrypt(key, await hsm.aesGcmEncrypt(key, plaintext, aad), aad);
          return back.equals(plaintext);
        }));
        assert.equal(results.filter(Boolean).length, 200);
      });
    });

    describe('HMAC-SHA-256', () => {
      it('is 32 bytes, deterministic for the same input and different for different input', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        const key = await keyOf('hmac-sha256');
        const a1 = await hsm.hmacSha256(key, Buffer.from('message a'));
        const a2 = await hsm.hmacSha256(key, Buffer.from('message a'));
        const b = await hsm.hmacSha256(key, Buffer.from('message b'));
        const empty = await hsm.hmacSha256(key, Buffer.alloc(0));
        assert.equal(a1.length, 32);
        assert.equal(b.length, 32);
        assert.equal(empty.length, 32);
        assert.deepEqual(a1, a2);
        assert.notDeepEqual(a1, b);
        assert.notDeepEqual(a1, empty);
      });

      it('differs between two keys for the same input', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        const key = await keyOf('hmac-sha256');
        const other = await generate('hmac-other', 'hmac-sha256');
        const data = Buffer.from('same input');
        assert.notDeepEqual(await hsm.hmacSha256(key, data), await hsm.hmacSha256(other, data));
      });
    });

    describe('signatures', () => {
      for (const [kind, digest, size] of [['ec-p256', 'sha256', 64], ['ec-p384', 'sha384', 96]] as const) {
        it(`${kind} ECDSA signatures verify with Node (${digest}, ieee-p1363) and fail for other data`, async (t: TestContext) => {
          if (lacks(t, 'ecdsa')) return;
          const key = await keyOf(kind);
          const pub = spkiOf(key);
          for (const data of [Buffer.alloc(0), Buffer.from('hello'), randomBytes(10_000)]) {
            const signature = await hsm.sign(key, data);
            assert.equal(signature.length, size);
            assert.equal(verify(digest, data, { key: pub, dsaEncoding: 'ieee-p1363' }, signature), true, `${kind} signature does not verify`);
            assert.equal(verify(digest, Buffer.concat([data, Buffer.from('x')]), { key: pub, dsaEncoding: 'ieee-p1363' }, signature), false);
          }
        });
      }

      it('rsa-2048 RSA-PSS-SHA256 signatures verify with Node (salt 32) and fail for other data', async (t: TestContext) => {
        if (lacks(t, 'rsaPss')) return;
        const key = await keyOf('rsa-2048');
        const data = Buffer.from('sign me');
        const signature = await hsm.sign(key, data);
        assert.equal(signature.length, 256);
        await assertRsaPssVerifies(key);
      });

      it('refuses to sign with a secret key', async () => {
        const key = await keyOf('aes256');
        await assert.rejects(hsm.sign(key, Buffer.from('x')), keyholdCode('ERR_KEY_OPERATION_UNSUPPORTED'));
      });
    });

    describe('RSA-OAEP', () => {
      it('probeOaepHash, then rsaEncrypt/rsaDecrypt round-trip and a local publicEncrypt decrypts on the device', async (t: TestContext) => {
        if (lacks(t, 'rsaOaepDecrypt')) return;
        const key = await keyOf('rsa-2048');
        const pub = spkiOf(key);
        const hash = await hsm.probeOaepHash(key, pub);
        assert.ok(hash === 'sha1' || hash === 'sha256', `probed ${String(hash)}`);

        for (const plaintext of [Buffer.alloc(0), Buffer.from([0]), randomBytes(32), randomBytes(190)]) {
          const ciphertext = await hsm.rsaEncrypt(key, pub, plaintext, hash);
          assert.equal(ciphertext.length, 256);
          assert.deepEqual(await hsm.rsaDecrypt(key, ciphertext, hash), plaintext);
        }

        const plaintext = randomBytes(32);
        const local = publicEncrypt({ key: pub, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
        assert.deepEqual(await hsm.rsaDecrypt(key, local, hash), plaintext);
      });

      it('rejects a tampered RSA ciphertext (ERR_CIPHERTEXT_INVALID) and the pool still works', async (t: TestContext) => {
        if (lacks(t, 'rsaOaepDecrypt')) return;
        const key = await keyOf('rsa-2048');
        const pub = spkiOf(key);
        const hash = await hsm.probeOaepHash(key, pub);
        const plaintext = randomBytes(32);
        const ciphertext = await hsm.rsaEncrypt(key, pub, plaintext, hash);
        for (const byte of [0, 1, 100, 128, 255]) {
          await assert.rejects(hsm.rsaDecrypt(key, flipBit(ciphertext, byte * 8 + 7 - (byte % 8)), hash), keyholdCode('ERR_CIPHERTEXT_INVALID'), `byte ${byte}`);
        }
        await assertPoolHealthy(await keyOf('aes256'));
        assert.deepEqual(await hsm.rsaDecrypt(key, ciphertext, hash), plaintext);
      });
    });

    describe('misuse fails with the same codes on every implementation', () => {
      it('a key whose usage does not allow the operation: ERR_HSM (CKR_KEY_FUNCTION_NOT_PERMITTED)', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const hmacKey = await keyOf('hmac-sha256');
        const aes = await keyOf('aes256');
        const ec = await keyOf('ec-p256');
        await assert.rejects(hsm.aesGcmEncrypt(hmacKey, Buffer.from('x'), Buffer.alloc(0)), keyholdCode('ERR_HSM'));
        await assert.rejects(hsm.hmacSha256(aes, Buffer.from('x')), keyholdCode('ERR_HSM'));
        await assert.rejects(hsm.aesGcmEncrypt(ec, Buffer.from('x'), Buffer.alloc(0)), keyholdCode('ERR_HSM'));
        await assertPoolHealthy(aes);
      });

      it('a destroyed key: its operations fail with ERR_HSM and findKey no longer finds it', async (t: TestContext) => {
        if (lacks(t, 'aesGcm')) return;
        const key = await generate('destroyed-then-used', 'aes256');
        const blob = await hsm.aesGcmEncrypt(key, Buffer.from('x'), Buffer.alloc(0));
        await hsm.destroyKey(key);
        created.delete(key.label);
        assert.equal(hsm.findKey(key.label, 'aes256'), null);
        await assert.rejects(hsm.aesGcmEncrypt(key, Buffer.from('x'), Buffer.alloc(0)), keyholdCode('ERR_HSM'));
        await assert.rejects(hsm.aesGcmDecrypt(key, blob, Buffer.alloc(0)), keyholdCode('ERR_HSM'));
        await assertPoolHealthy(await keyOf('aes256'));
      });
    });

    describe('data objects', () => {
      const label = (name: string) => `keyhold-contract/${run}/data/${name}`;

      it('put, get (the same bytes), destroy; then get is null and destroying again is fine', async () => {
        const value = randomBytes(412);
        await hsm.putDataObject(label('round-trip'), value);
        assert.deepEqual(await hsm.getDataObject(label('round-trip')), value);
        await hsm.destroyDataObject(label('round-trip'));
        assert.equal(await hsm.getDataObject(label('round-trip')), null);
        await hsm.destroyDataObject(label('round-trip'));
      });

      it('an unknown label reads null; a taken label is refused (ERR_CONFLICT) and keeps its value', async () => {
        assert.equal(await hsm.getDataObject(label('never-made')), null);
        await hsm.putDataObject(label('taken'), Buffer.from('first'));
        await assert.rejects(hsm.putDataObject(label('taken'), Buffer.from('second')), keyholdCode('ERR_CONFLICT'));
        assert.deepEqual(await hsm.getDataObject(label('taken')), Buffer.from('first'));
        await hsm.destroyDataObject(label('taken'));
      });

      it('a data object is not a key: findKey and listKeys do not see it', async () => {
        await hsm.putDataObject(label('not-a-key'), Buffer.from('x'));
        for (const kind of ['aes256', 'rsa-3072', 'ec-p256'] as const) {
          assert.equal(hsm.findKey(label('not-a-key'), kind), null);
          assert.deepEqual(hsm.listKeys(label(''), kind), []);
        }
        await hsm.destroyDataObject(label('not-a-key'));
      });
    });

    describe('health and accounting', () => {
      it('health() is ok and cached within its TTL', async () => {
        const first = await hsm.health();
        assert.equal(first.ok, true, first.error);
        assert.equal(first.error, undefined);
        assert.ok(first.latencyMs >= 0);
        assert.ok(Math.abs(Date.now() - first.checkedAt) < 60_000);
        const second = await hsm.health();
        assert.equal(second.ok, true);
        assert.equal(second.checkedAt, first.checkedAt);
      });

      it('callCount increases with device operations', async (t: TestContext) => {
        if (lacks(t, 'hmacSha256')) return;
        const key = await keyOf('hmac-sha256');
        const before = hsm.callCount;
        await hsm.hmacSha256(key, Buffer.from('count me'));
        await hsm.hmacSha256(key, Buffer.from('and me'));
        assert.ok(hsm.callCount >= before + 2, `callCount went from ${before} to ${hsm.callCount}`);
      });

      it('exposes token information', () => {
        assert.equal(typeof hsm.token.label, 'string');
        assert.ok(hsm.token.label.length > 0);
        assert.match(hsm.token.slotId, /^\d+$/);
      });
    });
  });
}
