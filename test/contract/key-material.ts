import { constants, createDecipheriv, publicEncrypt, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { OaepHash } from '../../src/hsm/types.js';
import { algorithmOf, type KeyOperation } from '../../src/keys/algorithms.js';
import type { KeyMaterial } from '../../src/keys/key-material.js';
import type { KeyType } from '../../src/keys/types.js';
import { flipBit } from '../helpers/bytes.js';
import { keyholdCode } from '../helpers/errors.js';

/** One fresh version's material of a key type, with what a caller outside keyhold may know of it. */
export interface MaterialUnderTest {
  material: KeyMaterial;
  /** Asymmetric keys: the public half, to check signatures and make ciphertexts with Node alone. */
  publicKey?: KeyObject;
  /** RSA keys: the OAEP hash the version was made with. */
  oaepHash?: OaepHash;
  /** Only where the implementation has it in memory anyway: the raw secret key, for an independent AES-GCM check. */
  rawSecret?: Buffer;
}

export const CONTRACT_TYPES: readonly KeyType[] = ['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048'];

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const NO_AAD = Buffer.alloc(0);

/** Calls `operation` on the material with inputs that would be fine for a type that had it. */
function attempt(material: KeyMaterial, operation: KeyOperation): Promise<unknown> {
  switch (operation) {
    case 'encrypt':
    case 'datakey':
      return material.seal(Buffer.from('probe'), NO_AAD);
    case 'decrypt':
      return material.open(randomBytes(64), NO_AAD);
    case 'sign':
      return material.sign(Buffer.from('probe'));
    case 'verify':
      return material.verify(Buffer.from('probe'), randomBytes(64));
  }
}

const OPERATIONS: readonly KeyOperation[] = ['encrypt', 'decrypt', 'sign', 'verify'];

/**
 * The behaviour every KeyMaterial implementation must have, for every key type it can hold.
 * `make` returns a fresh version's material each call (the close case uses its own).
 */
export function keyMaterialContract(name: string, make: (type: KeyType) => Promise<MaterialUnderTest>): void {
  for (const type of CONTRACT_TYPES) {
    const algorithm = algorithmOf(type);
    describe(`${name} key material contract: ${type}`, () => {
      let subject: MaterialUnderTest;
      let material: KeyMaterial;
      before(async () => {
        subject = await make(type);
        material = subject.material;
      });

      it('refuses exactly the operations its type does not have, with ERR_KEY_OPERATION_UNSUPPORTED', async () => {
        for (const operation of OPERATIONS) {
          if (algorithm.operations.has(operation)) continue;
          await assert.rejects(attempt(material, operation), keyholdCode('ERR_KEY_OPERATION_UNSUPPORTED'), operation);
        }
      });

      if (algorithm.family === 'aes') {
        it('seals iv(12) ‖ ciphertext ‖ tag(16) with a fresh IV each time, and opens it again', async () => {
          const aad = Buffer.from('header\0context');
          for (const size of [0, 1, 64, 4096]) {
            const plaintext = randomBytes(size);
            const body = await material.seal(plaintext, aad);
            assert.equal(body.length, GCM_IV_BYTES + size + GCM_TAG_BYTES);
            assert.deepEqual(await material.open(body, aad), plaintext);
            const again = await material.seal(plaintext, aad);
            assert.notDeepEqual(again.subarray(0, GCM_IV_BYTES), body.subarray(0, GCM_IV_BYTES));
          }
        });

        it('is plain AES-256-GCM (checked with Node, where the secret is in memory)', async (t) => {
          if (!subject.rawSecret) return t.skip('the secret is not in this process');
          const aad = Buffer.from('independent');
          const body = await material.seal(Buffer.from('checked elsewhere'), aad);
          const decipher = createDecipheriv('aes-256-gcm', subject.rawSecret, body.subarray(0, GCM_IV_BYTES));
          decipher.setAAD(aad);
          decipher.setAuthTag(body.subarray(body.length - GCM_TAG_BYTES));
          const plain = Buffer.concat([decipher.update(body.subarray(GCM_IV_BYTES, body.length - GCM_TAG_BYTES)), decipher.final()]);
          assert.equal(plain.toString(), 'checked elsewhere');
        });

        it('rejects another AAD, any flipped bit and a cut body with ERR_CIPHERTEXT_INVALID', async () => {
          const aad = Buffer.from('bound');
          const body = await material.seal(Buffer.from('authenticated'), aad);
          await assert.rejects(material.open(body, Buffer.from('other')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
          await assert.rejects(material.open(body, NO_AAD), keyholdCode('ERR_CIPHERTEXT_INVALID'));
          for (const byte of [0, GCM_IV_BYTES, body.length - 1]) {
            await assert.rejects(material.open(flipBit(body, byte * 8 + 7), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `bit flipped in byte ${byte}`);
          }
          await assert.rejects(material.open(body.subarray(0, body.length - 1), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
          await assert.rejects(material.open(body.subarray(0, GCM_IV_BYTES + GCM_TAG_BYTES - 1), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        });
      }

      if (algorithm.family === 'rsa') {
        const capacity = (hash: OaepHash) => (algorithm.modulusBits as number) / 8 - 2 * (hash === 'sha256' ? 32 : 20) - 2;

        it('seals with RSA-OAEP up to its capacity, opens it again, and refuses one byte more with ERR_PLAINTEXT_TOO_LARGE', async () => {
          const limit = capacity(subject.oaepHash ?? 'sha256');
          for (const size of [0, 32, limit]) {
            const plaintext = randomBytes(size);
            assert.deepEqual(await material.open(await material.seal(plaintext, NO_AAD), NO_AAD), plaintext);
          }
          await assert.rejects(material.seal(randomBytes(limit + 1), NO_AAD), keyholdCode('ERR_PLAINTEXT_TOO_LARGE'));
        });

        it('opens what Node encrypts with the public key alone', async () => {
          assert.ok(subject.publicKey);
          const body = publicEncrypt({ key: subject.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: subject.oaepHash ?? 'sha256' }, Buffer.from('from outside'));
          assert.equal((await material.open(body, NO_AAD)).toString(), 'from outside');
        });

        it('binds no AAD: refuses a non-empty one with ERR_BAD_REQUEST', async () => {
          await assert.rejects(material.seal(Buffer.from('x'), Buffer.from('context')), keyholdCode('ERR_BAD_REQUEST'));
          const body = await material.seal(Buffer.from('x'), NO_AAD);
          await assert.rejects(material.open(body, Buffer.from('context')), keyholdCode('ERR_BAD_REQUEST'));
        });

        it('rejects a tampered or foreign body with ERR_CIPHERTEXT_INVALID', async () => {
          const body = await material.seal(Buffer.from('padded'), NO_AAD);
          await assert.rejects(material.open(flipBit(body, 40 * 8 + 7), NO_AAD), keyholdCode('ERR_CIPHERTEXT_INVALID'));
          await assert.rejects(material.open(randomBytes(body.length), NO_AAD), keyholdCode('ERR_CIPHERTEXT_INVALID'));
        });
      }

      if (algorithm.family === 'ec' || algorithm.family === 'rsa') {
        it('signs so that Node verifies with the public key alone (ECDSA P1363 / RSA-PSS-SHA256), and verifies its own signatures', async () => {
          assert.ok(subject.publicKey);
          const options = algorithm.family === 'ec'
            ? { key: subject.publicKey, dsaEncoding: 'ieee-p1363' as const }
            : { key: subject.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
          for (const input of [Buffer.alloc(0), Buffer.from('message'), randomBytes(5000)]) {
            const signature = await material.sign(input);
            if (algorithm.family === 'ec') assert.equal(signature.length, type === 'ec-p256' ? 64 : 96);
            assert.equal(nodeVerify(algorithm.digest ?? 'sha256', input, options, signature), true);
            assert.equal(await material.verify(input, signature), true);
            assert.equal(await material.verify(Buffer.concat([input, Buffer.of(0)]), signature), false);
            assert.equal(await material.verify(input, flipBit(signature, 3 * 8 + 7)), false);
            assert.equal(await material.verify(input, signature.subarray(1)), false);
          }
        });
      }

      if (algorithm.family === 'hmac') {
        it('signs with a 32-byte HMAC-SHA256 tag, the same for the same input, and verifies it in full only', async () => {
          const input = Buffer.from('mac me');
          const tag = await material.sign(input);
          assert.equal(tag.length, 32);
          assert.deepEqual(await material.sign(input), tag);
          assert.notDeepEqual(await material.sign(Buffer.from('mac me too')), tag);
          assert.equal(await material.verify(input, tag), true);
          assert.equal(await material.verify(Buffer.from('other'), tag), false);
          assert.equal(await material.verify(input, flipBit(tag, 31 * 8 + 7)), false);
          assert.equal(await material.verify(input, tag.subarray(0, 16)), false);
          assert.equal(await material.verify(input, Buffer.alloc(0)), false);
        });
      }

      it('once closed, refuses every operation with ERR_CONFLICT; closing again is harmless', async () => {
        const closing = (await make(type)).material;
        closing.close();
        closing.close();
        for (const operation of OPERATIONS) await assert.rejects(attempt(closing, operation), keyholdCode('ERR_CONFLICT'), operation);
      });
    });
  }
}
