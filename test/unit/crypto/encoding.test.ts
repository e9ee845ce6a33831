import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBase64 } from '../../../src/crypto/encoding.js';
import { KeyholdError, isKeyholdError } from '../../../src/errors.js';

function badRequest(field: string): (err: unknown) => boolean {
  return (err: unknown) => {
    if (!isKeyholdError(err, 'ERR_BAD_REQUEST')) assert.fail(`expected ERR_BAD_REQUEST, got ${isKeyholdError(err) ? err.code : String(err)}`);
    assert.deepEqual((err as KeyholdError).details, { field });
    assert.match(err.message, new RegExp(`^${field} `));
    return true;
  };
}

describe('decodeBase64', () => {
  it('accepts standard base64 with 0, 1 or 2 padding characters', () => {
    assert.deepEqual(decodeBase64('', 'f'), Buffer.alloc(0));
    assert.deepEqual(decodeBase64('QQ==', 'f'), Buffer.from('A'));
    assert.deepEqual(decodeBase64('QUI=', 'f'), Buffer.from('AB'));
    assert.deepEqual(decodeBase64('QUJD', 'f'), Buffer.from('ABC'));
    assert.deepEqual(decodeBase64('QUJDRA==', 'f'), Buffer.from('ABCD'));
    assert.deepEqual(decodeBase64('+/+/', 'f'), Buffer.from([0xfb, 0xff, 0xbf]));
    assert.deepEqual(decodeBase64('AAAA', 'f'), Buffer.alloc(3));
  });

  it('round-trips every length Node encodes', () => {
    for (let length = 0; length <= 100; length++) {
      const bytes = randomBytes(length);
      assert.deepEqual(decodeBase64(bytes.toString('base64'), 'f'), bytes);
    }
    const large = randomBytes(300_000);
    assert.deepEqual(decodeBase64(large.toString('base64'), 'f'), large);
  });

  it('rejects invalid characters, including the URL-safe alphabet', () => {
    for (const bad of ['QU*D', 'QUJ-', 'QUJ_', '-_-_', 'QUJD!', 'QUJ.', 'QUJÐ', 'QUJ\0', '😀AAA']) {
      assert.throws(() => decodeBase64(bad, 'plaintext'), badRequest('plaintext'), JSON.stringify(bad));
    }
  });

  it('rejects bad padding and wrong lengths', () => {
    for (const bad of ['Q', 'QQ', 'QUI', 'QQ=', 'Q===', '====', '=', '==', 'QQ==QQ==', 'QQ==A', '=QQ=', 'QU=D', 'QUJDR', 'QUJD=', 'QUJD==', 'QUI==']) {
      assert.throws(() => decodeBase64(bad, 'ciphertext'), badRequest('ciphertext'), JSON.stringify(bad));
    }
  });

  it('rejects whitespace anywhere (Node would silently skip it)', () => {
    for (const bad of [' QUJD', 'QUJD ', 'QU JD', 'QUJD\n', '\nQUJD', 'QU\r\nJD', '\tQUJD', 'QUJD\u00a0', 'QUJD\u2028']) {
      assert.throws(() => decodeBase64(bad, 'context'), badRequest('context'), JSON.stringify(bad));
    }
  });

  it('names the offending field in the error', () => {
    try {
      decodeBase64('***', 'input');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof KeyholdError);
      assert.equal(err.code, 'ERR_BAD_REQUEST');
      assert.deepEqual(err.details, { field: 'input' });
    }
  });
});
