import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GCM_IV_BYTES, GCM_TAG_BYTES, aesGcmOpen, aesGcmSeal } from '../../../src/crypto/aead.js';
import { zeroize } from '../../../src/crypto/zero.js';
import { flipBit } from '../../helpers/bytes.js';
import { keyholdCode } from '../../helpers/errors.js';

describe('aesGcmSeal / aesGcmOpen', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('keyhold-test-aad');

  it('uses a 96-bit IV and a 128-bit tag', () => {
    assert.equal(GCM_IV_BYTES, 12);
    assert.equal(GCM_TAG_BYTES, 16);
  });

  it('round-trips plaintexts of many sizes with a Buffer or a KeyObject key', () => {
    for (const size of [0, 1, 15, 16, 17, 1000, 65_536, 100_001]) {
      const plaintext = randomBytes(size);
      for (const k of [key, createSecretKey(key)]) {
        const blob = aesGcmSeal(k, plaintext, aad);
        assert.equal(blob.length, GCM_IV_BYTES + size + GCM_TAG_BYTES);
        assert.deepEqual(aesGcmOpen(k, blob, aad), plaintext);
        assert.deepEqual(aesGcmOpen(key, blob, aad), plaintext);
      }
    }
  });

  it('round-trips with an empty AAD', () => {
    const blob = aesGcmSeal(key, Buffer.from('no aad'), Buffer.alloc(0));
    assert.deepEqual(aesGcmOpen(key, blob, Buffer.alloc(0)), Buffer.from('no aad'));
    assert.throws(() => aesGcmOpen(key, blob, Buffer.of(0)), keyholdCode('ERR_CIPHERTEXT_INVALID'));
  });

  it('uses a fresh random IV every time', () => {
    const plaintext = Buffer.from('same input');
    const ivs = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const blob = aesGcmSeal(key, plaintext, aad);
      ivs.add(blob.subarray(0, GCM_IV_BYTES).toString('hex'));
    }
    assert.equal(ivs.size, 200);
  });

  it('lays out iv ‖ ciphertext ‖ tag exactly as Node AES-256-GCM does (interoperable both ways)', () => {
    const plaintext = Buffer.from('interop check');
    const blob = aesGcmSeal(key, plaintext, aad);
    const iv = blob.subarray(0, 12);
    const tag = blob.subarray(blob.length - 16);
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    assert.deepEqual(Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]), plaintext);

    const iv2 = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv2);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    assert.deepEqual(aesGcmOpen(key, Buffer.concat([iv2, body, cipher.getAuthTag()]), aad), plaintext);
  });

  it('rejects every flipped bit in iv, ciphertext and tag with ERR_CIPHERTEXT_INVALID', () => {
    const blob = aesGcmSeal(key, Buffer.from('tamper-evident'), aad);
    for (let byte = 0; byte < blob.length; byte++) {
      for (const bit of [7, 4, 0]) {
        assert.throws(() => aesGcmOpen(key, flipBit(blob, byte * 8 + bit), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `bit ${bit} of byte ${byte}`);
      }
    }
  });

  it('rejects a wrong AAD, a wrong key, and a truncated, extended or short blob', () => {
    const blob = aesGcmSeal(key, Buffer.from('bound'), aad);
    assert.throws(() => aesGcmOpen(key, blob, Buffer.from('keyhold-test-aaD')), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmOpen(key, blob, Buffer.concat([aad, Buffer.of(0)])), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmOpen(randomBytes(32), blob, aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmOpen(key, blob.subarray(0, blob.length - 1), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmOpen(key, blob.subarray(1), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmOpen(key, Buffer.concat([blob, Buffer.of(0)]), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    for (const length of [0, 1, 12, 27]) {
      assert.throws(() => aesGcmOpen(key, randomBytes(length), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'), `length ${length}`);
    }
    // 28 bytes is the smallest well-formed blob (empty plaintext); random bytes there still fail the tag.
    assert.throws(() => aesGcmOpen(key, randomBytes(28), aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    const empty = aesGcmSeal(key, Buffer.alloc(0), aad);
    assert.equal(empty.length, 28);
    assert.deepEqual(aesGcmOpen(key, empty, aad), Buffer.alloc(0));
  });

  it('a key of the wrong size never opens a blob', () => {
    const blob = aesGcmSeal(key, Buffer.from('x'), aad);
    assert.throws(() => aesGcmOpen(key.subarray(0, 16), blob, aad), keyholdCode('ERR_CIPHERTEXT_INVALID'));
    assert.throws(() => aesGcmSeal(key.subarray(0, 16), Buffer.from('x'), aad));
  });

  it('leaves its inputs untouched', () => {
    const plaintext = Buffer.from('unchanged');
    const aadCopy = Buffer.from(aad);
    const blob = aesGcmSeal(key, plaintext, aad);
    const blobCopy = Buffer.from(blob);
    aesGcmOpen(key, blob, aad);
    assert.deepEqual(plaintext, Buffer.from('unchanged'));
    assert.deepEqual(aad, aadCopy);
    assert.deepEqual(blob, blobCopy);
  });
});

describe('zeroize', () => {
  it('fills every given buffer with zeros and skips null and undefined', () => {
    const a = randomBytes(32);
    const b = Buffer.from('secret material');
    zeroize(a, undefined, b, null);
    assert.deepEqual(a, Buffer.alloc(32));
    assert.deepEqual(b, Buffer.alloc(b.length));
  });

  it('is a no-op without arguments and on empty buffers', () => {
    zeroize();
    const empty = Buffer.alloc(0);
    zeroize(empty);
    assert.equal(empty.length, 0);
  });

  it('zeroes the shared memory of a view, and only that range', () => {
    const parent = Buffer.from([1, 2, 3, 4, 5, 6]);
    zeroize(parent.subarray(2, 4));
    assert.deepEqual(parent, Buffer.from([1, 2, 0, 0, 5, 6]));
  });

  it('does not touch copies', () => {
    const original = Buffer.from('keep me');
    const copy = Buffer.from(original);
    zeroize(copy);
    assert.deepEqual(original, Buffer.from('keep me'));
  });
});
