import assert from 'node:assert/strict';
import { test } from 'node:test';
import { poolRandomBytes } from '../../../src/crypto/random-pool.js';

test('pool: every IV is distinct across many block refills, and never changes after it is handed out', () => {
  const seen = new Set<string>();
  const kept: Array<[Buffer, string]> = [];
  for (let i = 0; i < 5000; i++) {
    const iv = poolRandomBytes(12);
    assert.equal(iv.length, 12);
    const hex = iv.toString('hex');
    assert.ok(!seen.has(hex), `IV ${hex} handed out twice`);
    seen.add(hex);
    if (i % 97 === 0) kept.push([iv, hex]);
  }
  // No byte is handed out twice: IVs from the same block occupy disjoint ranges of it.
  const ranges = new Map<ArrayBufferLike, Array<[number, number]>>();
  for (let i = 0; i < 400; i++) {
    const iv = poolRandomBytes(12);
    const list = ranges.get(iv.buffer) ?? [];
    for (const [start, end] of list) assert.ok(iv.byteOffset >= end || iv.byteOffset + 12 <= start, `IV at ${iv.byteOffset} overlaps [${start}, ${end})`);
    list.push([iv.byteOffset, iv.byteOffset + 12]);
    ranges.set(iv.buffer, list);
  }
  // 5000 × 12 bytes spans about 15 blocks: earlier IVs must not have been overwritten by refills.
  for (const [iv, hex] of kept) assert.equal(iv.toString('hex'), hex);
});

test('pool: bytes look random (each bit set about half the time)', () => {
  const ones = new Array<number>(8).fill(0);
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const byte = poolRandomBytes(1)[0] as number;
    for (let b = 0; b < 8; b++) if (byte & (1 << b)) ones[b] = (ones[b] as number) + 1;
  }
  // 20,000 fair coin flips: 6 standard deviations is ±424.
  for (const count of ones) assert.ok(Math.abs(count - n / 2) < 424, `bit set ${count}/${n} times`);
});

test('pool: refuses sizes it does not serve instead of returning short buffers', () => {
  for (const size of [0, -1, 1.5, 1025, Number.NaN]) assert.throws(() => poolRandomBytes(size), RangeError);
});
