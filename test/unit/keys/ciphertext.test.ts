import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { aadFor, formatCiphertext, headerFor, parseCiphertext } from '../../../src/keys/ciphertext.js';
import { keyholdCode } from '../../helpers/errors.js';

const invalid = keyholdCode('ERR_CIPHERTEXT_INVALID');

const body = Buffer.from('0123456789abcdef0123456789abcdef');
const b64 = body.toString('base64');

describe('formatCiphertext / headerFor', () => {
  it('formats keyhold:<name>:v<version>:<base64>', () => {
    assert.equal(headerFor('orders', 3), 'keyhold:orders:v3');
    assert.equal(formatCiphertext('orders', 3, body), `keyhold:orders:v3:${b64}`);
    assert.equal(formatCiphertext('k', 1, Buffer.alloc(0)), 'keyhold:k:v1:');
  });

  it('round-trips through parseCiphertext', () => {
    for (const name of ['k', 'orders', 'a.b_c-d', 'A9', 'x'.repeat(128)]) {
      for (const version of [1, 2, 10, 999_999_999]) {
        for (const payload of [Buffer.alloc(0), Buffer.of(0), randomBytes(1), randomBytes(2), randomBytes(3), randomBytes(1000)]) {
          const parsed = parseCiphertext(formatCiphertext(name, version, payload), name);
          assert.equal(parsed.name, name);
          assert.equal(parsed.version, version);
          assert.equal(parsed.header, headerFor(name, version));
          assert.deepEqual(parsed.body, payload);
        }
      }
    }
  });
});

describe('parseCiphertext', () => {
  it('parses a well-formed ciphertext', () => {
    assert.deepEqual(parseCiphertext(`keyhold:orders:v12:${b64}`, 'orders'), { name: 'orders', version: 12, header: 'keyhold:orders:v12', body });
  });

  it('rejects malformed headers with ERR_CIPHERTEXT_INVALID', () => {
    const bad = [
      '',
      b64,
      `orders:v1:${b64}`,
      `keyhold::v1:${b64}`,
      `keyhold:orders:${b64}`,
      `keyhold:orders:1:${b64}`,
      `keyhold:orders:V1:${b64}`,
      `keyhold:orders:v:${b64}`,
      `keyhold:orders:v1`,
      `keyhold:orders:v1${b64}`,
      `keyhold:orders:v1:${b64}:extra`,
      `KEYHOLD:orders:v1:${b64}`,
      `keyhold :orders:v1:${b64}`,
      ` keyhold:orders:v1:${b64}`,
      `keyhold:orders:v1:${b64}\n`,
      `keyhold:orders:v1:${b64} `,
      `vault:v1:${b64}`,
      `keyhold:orders:v-1:${b64}`,
      `keyhold:orders:v1.5:${b64}`,
      `keyhold:orders:v 1:${b64}`,
      `keyhold:orders:v1:${body.toString('base64url').replace(/=+$/, '')}-_`,
    ];
    for (const value of bad) assert.throws(() => parseCiphertext(value, 'orders'), invalid, JSON.stringify(value.slice(0, 60)));
  });

  it('rejects a ciphertext of another key', () => {
    for (const other of ['order', 'orders2', 'Orders', 'ORDERS', 'orders.', 'x']) {
      assert.throws(() => parseCiphertext(`keyhold:${other}:v1:${b64}`, 'orders'), invalid, other);
    }
    assert.throws(() => parseCiphertext(`keyhold:orders:v1:${b64}`, 'order'), invalid);
  });

  it('rejects names that are not key names', () => {
    for (const name of ['.hidden', '-dash', '_under', 'a/b', 'a b', 'ä', 'x'.repeat(129)]) {
      assert.throws(() => parseCiphertext(`keyhold:${name}:v1:${b64}`, name), invalid, name.slice(0, 20));
    }
  });

  it('rejects version 0, leading zeros and huge versions', () => {
    for (const version of ['0', '00', '01', '007', '1000000000', '9999999999', '99999999999999999999', '1e3']) {
      assert.throws(() => parseCiphertext(`keyhold:orders:v${version}:${b64}`, 'orders'), invalid, version);
    }
    assert.equal(parseCiphertext(`keyhold:orders:v999999999:${b64}`, 'orders').version, 999_999_999);
    assert.ok(Number.isSafeInteger(parseCiphertext(`keyhold:orders:v999999999:${b64}`, 'orders').version));
  });

  it('rejects a body that is not strict base64', () => {
    for (const bad of ['Q', 'QQ', 'QQ=', 'Q===', '=QQQ', 'QQ==QQ==', 'QUJD=', '====', 'QU JD', 'QUJ*', 'QUJ-', 'QUJ_', 'QUJD\t']) {
      assert.throws(() => parseCiphertext(`keyhold:orders:v1:${bad}`, 'orders'), invalid, JSON.stringify(bad));
    }
  });

  it('accepts an empty body (rejected later by the cipher, not the parser)', () => {
    assert.deepEqual(parseCiphertext('keyhold:orders:v1:', 'orders').body, Buffer.alloc(0));
  });

  it('names what it parsed in its errors', () => {
    assert.throws(() => parseCiphertext('nope', 'orders', 'signature'), keyholdCode('ERR_CIPHERTEXT_INVALID', /^signature /));
    assert.throws(() => parseCiphertext('keyhold:orders:v1:Q', 'orders', 'signature'), keyholdCode('ERR_CIPHERTEXT_INVALID', /^signature /));
  });
});

describe('aadFor', () => {
  it('is header ‖ 0x00 ‖ context', () => {
    assert.deepEqual(aadFor('keyhold:k:v1', undefined), Buffer.from('keyhold:k:v1\0'));
    assert.deepEqual(aadFor('keyhold:k:v1', Buffer.alloc(0)), Buffer.from('keyhold:k:v1\0'));
    assert.deepEqual(aadFor('keyhold:k:v1', Buffer.from('ctx')), Buffer.from('keyhold:k:v1\0ctx'));
    const ctx = randomBytes(64);
    assert.deepEqual(aadFor('keyhold:k:v2', ctx), Buffer.concat([Buffer.from('keyhold:k:v2'), Buffer.of(0), ctx]));
  });

  it('differs for every change of name, version or context', () => {
    const seen = new Set<string>();
    for (const name of ['k', 'k1', 'k.1']) {
      for (const version of [1, 11, 111]) {
        for (const context of [undefined, Buffer.from('1'), Buffer.from('11'), Buffer.of(0)]) {
          seen.add(aadFor(headerFor(name, version), context).toString('hex'));
        }
      }
    }
    assert.equal(seen.size, 3 * 3 * 4);
  });
});
