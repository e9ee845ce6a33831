import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareKeys, MemoryStorage, MemoryStorageData } from '../../../src/storage/memory.js';
import type { Storage } from '../../../src/storage/types.js';
import { storageContract } from '../../contract/storage.js';

storageContract('memory', async () => {
  const data = new MemoryStorageData();
  let current: Storage = new MemoryStorage(data);
  return {
    storage: current,
    reopen: async () => {
      await current.close();
      current = MemoryStorage.reopen(data);
      return current;
    },
    cleanup: async () => {
      await current.close();
    },
  };
});

describe('MemoryStorage key order', () => {
  it('compareKeys agrees with UTF-8 byte order on every pair of a mixed set', () => {
    const keys = ['', 'a', 'a/', 'a/b', 'ab', '\u007f', '\u0080', '\u07ff', '\u0800', '\uD7FF', '\uE000', '\uFF21', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{10FFFF}', 'z\u{1F600}', 'z\uFFFF'];
    for (const a of keys) {
      for (const b of keys) {
        const bytes = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
        assert.equal(Math.sign(compareKeys(a, b)), bytes, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
      }
    }
  });
});
