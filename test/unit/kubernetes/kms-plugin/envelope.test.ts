import assert from 'node:assert/strict';
import { createSecretKey, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { isKeyholdError } from '../../../../src/errors.js';
import { MAX_CIPHERTEXT_BYTES, MAX_PLAINTEXT_BYTES, decodeKekAnnotation, encodeKekAnnotation, openDekSeed, sealDekSeed } from '../../../../src/kubernetes/kms-plugin/envelope.js';
import { deriveKeyId } from '../../../../src/kubernetes/kms-plugin/key-id.js';
import { Lru } from '../../../../src/kubernetes/kms-plugin/lru.js';
import { parseSocketAddress } from '../../../../src/kubernetes/kms-plugin/socket.js';
import { checkDecryptInput } from '../../../../src/kubernetes/kms-plugin/kms-service.js';

const invalid = (err: unknown) => isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID');

describe('kms envelope', () => {
  const kek = createSecretKey(randomBytes(32));
  const annotation = encodeKekAnnotation(randomBytes(60));

  it('round-trips seeds of 1..MAX_PLAINTEXT_BYTES within the 1 KiB ciphertext limit', () => {
    for (const size of [1, 32, MAX_PLAINTEXT_BYTES]) {
      const seed = randomBytes(size);
      const ct = sealDekSeed(kek, seed, 'kid', annotation);
      assert.ok(ct.length <= MAX_CIPHERTEXT_BYTES);
      assert.deepEqual(openDekSeed(kek, ct, 'kid', annotation), seed);
    }
    assert.throws(() => sealDekSeed(kek, Buffer.alloc(0), 'kid', annotation), (e) => isKeyholdError(e, 'ERR_PLAINTEXT_TOO_LARGE'));
    assert.throws(() => sealDekSeed(kek, Buffer.alloc(MAX_PLAINTEXT_BYTES + 1), 'kid', annotation), (e) => isKeyholdError(e, 'ERR_PLAINTEXT_TOO_LARGE'));
  });

  it('binds key_id and annotation: changing either fails authentication', () => {
    const ct = sealDekSeed(kek, Buffer.alloc(32, 1), 'kid', annotation);
    assert.throws(() => openDekSeed(kek, ct, 'kid2', annotation), invalid);
    const other = Buffer.from(annotation);
    other[5] = (other[5] as number) ^ 1;
    assert.throws(() => openDekSeed(kek, ct, 'kid', other), invalid);
    assert.throws(() => openDekSeed(createSecretKey(randomBytes(32)), ct, 'kid', annotation), invalid);
    assert.throws(() => openDekSeed(kek, Buffer.concat([Buffer.from([2]), ct.subarray(1)]), 'kid', annotation), invalid);
    assert.throws(() => openDekSeed(kek, ct.subarray(0, 20), 'kid', annotation), invalid);
  });

  it('annotation format: versioned, bounded', () => {
    assert.deepEqual(decodeKekAnnotation(encodeKekAnnotation(Buffer.from('abc'))), Buffer.from('abc'));
    for (const bad of [Buffer.alloc(0), Buffer.from([1]), Buffer.from([2, 1, 2]), Buffer.alloc(5000, 1)]) assert.throws(() => decodeKekAnnotation(bad), invalid);
  });
});

describe('kms key_id', () => {
  it('is deterministic, differs for any differing part, is length-prefixed and opaque', () => {
    const a = deriveKeyId(['pkcs11', 'SoftHSM', 'serial', 'label', '1']);
    assert.equal(a, deriveKeyId(['pkcs11', 'SoftHSM', 'serial', 'label', '1']));
    assert.notEqual(a, deriveKeyId(['pkcs11', 'SoftHSM', 'serial', 'label', '2']));
    assert.notEqual(deriveKeyId(['ab', 'c']), deriveKeyId(['a', 'bc']));
    assert.match(a, /^keyhold-[A-Za-z0-9_-]{43}$/);
    assert.ok(!a.includes('serial') && !a.includes('label'));
  });
});

describe('kms LRU', () => {
  it('evicts the least recently used entry and reports it', () => {
    const evicted: string[] = [];
    const lru = new Lru<string, string>(2, (v) => evicted.push(v));
    lru.set('a', 'A');
    lru.set('b', 'B');
    assert.equal(lru.get('a'), 'A'); // a is now the most recent
    lru.set('c', 'C');
    assert.deepEqual(evicted, ['B']);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.size, 2);
    assert.throws(() => new Lru(0));
  });
});

describe('kms socket addresses', () => {
  it('accepts paths and abstract names in the forms kube-apiserver and operators write', () => {
    assert.deepEqual(parseSocketAddress('/run/kms.sock'), { grpc: 'unix:///run/kms.sock', path: '/run/kms.sock', endpoint: 'unix:///run/kms.sock' });
    assert.deepEqual(parseSocketAddress('unix:///run/kms.sock'), { grpc: 'unix:///run/kms.sock', path: '/run/kms.sock', endpoint: 'unix:///run/kms.sock' });
    assert.deepEqual(parseSocketAddress('@keyhold'), { grpc: 'unix-abstract:keyhold', endpoint: 'unix:///@keyhold' });
    assert.deepEqual(parseSocketAddress('unix:///@keyhold'), { grpc: 'unix-abstract:keyhold', endpoint: 'unix:///@keyhold' });
    for (const bad of ['relative.sock', '@', '@bad name', `/${'x'.repeat(120)}`]) assert.throws(() => parseSocketAddress(bad), (e) => isKeyholdError(e, 'ERR_CONFIG'), bad);
  });
});

describe('kms Decrypt input checks', () => {
  const ok = { ciphertext: Buffer.alloc(40), keyId: 'k', annotations: { 'kek.keyhold.io': Buffer.alloc(10) } };
  it('accepts exactly what Encrypt returns and names what is wrong otherwise', () => {
    checkDecryptInput(ok);
    const cases: Array<[object, string]> = [
      [{ ciphertext: Buffer.alloc(0) }, 'ERR_CIPHERTEXT_INVALID'],
      [{ ciphertext: Buffer.alloc(1025) }, 'ERR_CIPHERTEXT_INVALID'],
      [{ keyId: '' }, 'ERR_BAD_REQUEST'],
      [{ keyId: 'x'.repeat(1025) }, 'ERR_BAD_REQUEST'],
      [{ annotations: {} }, 'ERR_CIPHERTEXT_INVALID'],
      [{ annotations: { 'Bad Key': Buffer.alloc(1) } }, 'ERR_BAD_REQUEST'],
      [{ annotations: { 'kek.keyhold.io': Buffer.alloc(1), 'extra.example.com': Buffer.alloc(1) } }, 'ERR_CIPHERTEXT_INVALID'],
      [{ annotations: { 'kek.keyhold.io': Buffer.alloc(33 * 1024) } }, 'ERR_BAD_REQUEST'],
    ];
    for (const [change, code] of cases) assert.throws(() => checkDecryptInput({ ...ok, ...change }), (e) => isKeyholdError(e, code as never), JSON.stringify(Object.keys(change)));
  });
});
