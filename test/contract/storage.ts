import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKeyholdError } from '../../src/errors.js';
import type { Storage, StorageEntry } from '../../src/storage/types.js';

export interface StorageFixture {
  storage: Storage;
  /** Closes the current storage and opens a new one over the same data. */
  reopen: () => Promise<Storage>;
  /** Releases everything; must tolerate a storage (or reopened storage) that is already closed. */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every Storage implementation must have. Each test gets a fresh, empty storage so
 * tests are independent and can run in any order.
 */
export function storageContract(name: string, open: () => Promise<StorageFixture>): void {
  async function withStorage(fn: (s: Storage, fx: StorageFixture) => Promise<void>): Promise<void> {
    const fx = await open();
    try {
      await fn(fx.storage, fx);
    } finally {
      await fx.cleanup();
    }
  }

  const b = (s: string): Buffer => Buffer.from(s, 'utf8');
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

  describe(`${name} storage contract`, () => {
    it('get of an absent key is null', () =>
      withStorage(async (s) => {
        assert.equal(await s.get('missing'), null);
        assert.equal(await s.get('a/b/c'), null);
      }));

    it('round-trips every byte value', () =>
      withStorage(async (s) => {
        await s.put('bytes', allBytes);
        const got = await s.get('bytes');
        assert.ok(Buffer.isBuffer(got));
        assert.deepEqual(got, allBytes);
      }));

    it('round-trips an empty value as present, not absent', () =>
      withStorage(async (s) => {
        await s.put('empty', Buffer.alloc(0));
        const got = await s.get('empty');
        assert.ok(Buffer.isBuffer(got));
        assert.equal(got.length, 0);
        assert.deepEqual(await s.list(''), ['empty']);
      }));

    it('round-trips a 1 MiB value', () =>
      withStorage(async (s) => {
        const big = randomBytes(1024 * 1024);
        await s.put('big', big);
        const got = await s.get('big');
        assert.ok(got !== null);
        assert.equal(got.length, big.length);
        assert.equal(Buffer.compare(got, big), 0);
      }));

    it('does not alias caller buffers', () =>
      withStorage(async (s) => {
        const v = b('original');
        await s.put('k', v);
        v.fill(0);
        const got = await s.get('k');
        assert.deepEqual(got, b('original'));
        got?.fill(0);
        assert.deepEqual(await s.get('k'), b('original'));
      }));

    it('overwrites an existing key', () =>
      withStorage(async (s) => {
        await s.put('k', b('first, longer value'));
        await s.put('k', b('second'));
        assert.deepEqual(await s.get('k'), b('second'));
        assert.deepEqual(await s.list(''), ['k']);
      }));

    it('deletes a key, and deleting an absent key is fine', () =>
      withStorage(async (s) => {
        await s.put('k', b('v'));
        await s.put('k2', b('v2'));
        await s.delete('k');
        assert.equal(await s.get('k'), null);
        assert.deepEqual(await s.list(''), ['k2']);
        await s.delete('k');
        await s.delete('never-existed');
        assert.deepEqual(await s.get('k2'), b('v2'));
      }));

    describe('list', () => {
      // '%' and '_' are LIKE wildcards; 'a/b' is a prefix of 'a/bc'; U+FF21 sorts before U+1F600
      // in byte (UTF-8) order but after it in UTF-16 order; U+10FFFF and U+D7FF are the edges of
      // a naive "increment the last character" upper bound.
      const keys = [
        'a/b', 'a/bc', 'a/b/c', 'a/b%', 'a/b_x', 'a/bX', 'a%b', 'a_b', 'ab', 'b',
        'u/é', 'u/日本', 'u/\u{1F600}', 'u/\uFF21', 'u/z',
        'p/\u{10FFFF}', 'p/\u{10FFFF}x', 'q',
        'r/\uD7FF', 'r/\uD7FFx', 'r/\uE000',
      ];
      // Ascending byte order, written out so the test cannot agree with a wrong sort.
      const all = [
        'a%b', 'a/b', 'a/b%', 'a/b/c', 'a/bX', 'a/b_x', 'a/bc', 'a_b', 'ab', 'b',
        'p/\u{10FFFF}', 'p/\u{10FFFF}x', 'q',
        'r/\uD7FF', 'r/\uD7FFx', 'r/\uE000',
        'u/z', 'u/é', 'u/日本', 'u/\uFF21', 'u/\u{1F600}',
      ];
      const cases: [string, string[]][] = [
        ['', all],
        ['a/b', ['a/b', 'a/b%', 'a/b/c', 'a/bX', 'a/b_x', 'a/bc']],
        ['a/b/', ['a/b/c']],
        ['a/bc', ['a/bc']],
        ['a/b%', ['a/b%']],
        ['a/b_', ['a/b_x']],
        ['a%', ['a%b']],
        ['a_', ['a_b']],
        ['a', ['a%b', 'a/b', 'a/b%', 'a/b/c', 'a/bX', 'a/b_x', 'a/bc', 'a_b', 'ab']],
        ['u/', ['u/z', 'u/é', 'u/日本', 'u/\uFF21', 'u/\u{1F600}']],
        ['u/日', ['u/日本']],
        ['u/\u{1F600}', ['u/\u{1F600}']],
        ['p/\u{10FFFF}', ['p/\u{10FFFF}', 'p/\u{10FFFF}x']],
        ['r/\uD7FF', ['r/\uD7FF', 'r/\uD7FFx']],
        ['zzz', []],
        ['a/b/c/', []],
      ];

      it('returns exactly the keys with the prefix, in ascending byte order', () =>
        withStorage(async (s) => {
          for (const k of keys) await s.put(k, b(k));
          for (const [prefix, expected] of cases) {
            assert.deepEqual(await s.list(prefix), expected, `list(${JSON.stringify(prefix)})`);
          }
          for (const k of keys) assert.deepEqual(await s.get(k), b(k), `get(${JSON.stringify(k)})`);
        }));

      it('of an empty storage is empty', () =>
        withStorage(async (s) => {
          assert.deepEqual(await s.list(''), []);
          assert.deepEqual(await s.list('a/'), []);
        }));
    });

    describe('atomic', () => {
      it('applies all writes when every check holds', () =>
        withStorage(async (s) => {
          await s.put('k1', b('v1'));
          await s.put('gone', b('x'));
          const ok = await s.atomic(
            [{ key: 'k1', value: b('v1') }, { key: 'k2', value: null }],
            [{ op: 'put', key: 'k2', value: b('v2') }, { op: 'put', key: 'k1', value: b('v1b') }, { op: 'delete', key: 'gone' }],
          );
          assert.equal(ok, true);
          assert.deepEqual(await s.get('k1'), b('v1b'));
          assert.deepEqual(await s.get('k2'), b('v2'));
          assert.equal(await s.get('gone'), null);
          assert.deepEqual(await s.list(''), ['k1', 'k2']);
        }));

      it('applies writes with no checks', () =>
        withStorage(async (s) => {
          assert.equal(await s.atomic([], [{ op: 'put', key: 'a', value: b('1') }, { op: 'put', key: 'b', value: b('2') }]), true);
          assert.deepEqual(await s.list(''), ['a', 'b']);
        }));

      it('applies nothing and returns false when one check fails', () =>
        withStorage(async (s) => {
          await s.put('k1', b('v1'));
          await s.put('k2', b('v2'));
          const ok = await s.atomic(
            [{ key: 'k1', value: b('v1') }, { key: 'k2', value: b('stale') }],
            [{ op: 'put', key: 'k3', value: b('v3') }, { op: 'put', key: 'k1', value: b('changed') }, { op: 'delete', key: 'k2' }],
          );
          assert.equal(ok, false);
          assert.deepEqual(await s.get('k1'), b('v1'));
          assert.deepEqual(await s.get('k2'), b('v2'));
          assert.equal(await s.get('k3'), null);
          assert.deepEqual(await s.list(''), ['k1', 'k2']);
        }));

      it('checks absence with a null value', () =>
        withStorage(async (s) => {
          const create = { op: 'put', key: 'lock', value: b('me') } as const;
          assert.equal(await s.atomic([{ key: 'lock', value: null }], [create]), true);
          assert.deepEqual(await s.get('lock'), b('me'));
          // Now present: the same create-if-absent must fail and leave the value alone.
          assert.equal(await s.atomic([{ key: 'lock', value: null }], [{ op: 'put', key: 'lock', value: b('you') }]), false);
          assert.deepEqual(await s.get('lock'), b('me'));
          // A value check against an absent key fails too.
          assert.equal(await s.atomic([{ key: 'nothing', value: b('me') }], [{ op: 'put', key: 'x', value: b('1') }]), false);
          assert.equal(await s.get('x'), null);
        }));

      it('distinguishes an empty value from absence', () =>
        withStorage(async (s) => {
          await s.put('empty', Buffer.alloc(0));
          const w = [{ op: 'put', key: 'x', value: b('1') }] as const;
          assert.equal(await s.atomic([{ key: 'empty', value: null }], w), false);
          assert.equal(await s.atomic([{ key: 'absent', value: Buffer.alloc(0) }], w), false);
          assert.equal(await s.get('x'), null);
          assert.equal(await s.atomic([{ key: 'empty', value: Buffer.alloc(0) }, { key: 'absent', value: null }], w), true);
          assert.deepEqual(await s.get('x'), b('1'));
        }));

      it('compares bytes exactly (a prefix of the stored value is not equal)', () =>
        withStorage(async (s) => {
          await s.put('k', b('value'));
          const w = [{ op: 'delete', key: 'k' }] as const;
          assert.equal(await s.atomic([{ key: 'k', value: b('valu') }], w), false);
          assert.equal(await s.atomic([{ key: 'k', value: b('value!') }], w), false);
          assert.deepEqual(await s.get('k'), b('value'));
        }));

      it('serialises 50 concurrent compare-and-set increments', () =>
        withStorage(async (s) => {
          const key = 'counter';
          let successes = 0;
          async function increment(): Promise<void> {
            for (;;) {
              const cur = await s.get(key);
              const next = (cur === null ? 0 : Number(cur.toString('utf8'))) + 1;
              if (await s.atomic([{ key, value: cur }], [{ op: 'put', key, value: b(String(next)) }])) {
                successes++;
                return;
              }
            }
          }
          await Promise.all(Array.from({ length: 50 }, increment));
          assert.equal(successes, 50);
          assert.deepEqual(await s.get(key), b('50'));
        }));
    });

    describe('snapshot', () => {
      async function drain(iterator: AsyncIterator<StorageEntry>, into: StorageEntry[] = []): Promise<StorageEntry[]> {
        for (let step = await iterator.next(); !step.done; step = await iterator.next()) into.push(step.value);
        return into;
      }
      const pad = (i: number): string => String(i).padStart(4, '0');
      /** More records than one page of a paged implementation, with values of varied length. */
      const seed = async (s: Storage, n: number): Promise<Map<string, Buffer>> => {
        const expected = new Map<string, Buffer>();
        for (let i = 0; i < n; i++) {
          const value = Buffer.concat([b(`v${i}:`), randomBytes(i % 50)]);
          expected.set(`rec/${pad(i)}`, value);
        }
        await Promise.all([...expected].map(([k, v]) => s.put(k, v)));
        return expected;
      };

      it('of an empty storage yields nothing', () =>
        withStorage(async (s) => {
          const seen: StorageEntry[] = [];
          for await (const entry of s.snapshot()) seen.push(entry);
          assert.deepEqual(seen, []);
        }));

      it('yields every record with its bytes, in ascending byte order', () =>
        withStorage(async (s) => {
          const odd = ['u/z', 'u/é', 'u/\uFF21', 'u/\u{1F600}', 'r/\uD7FF', 'r/\uE000', 'a%b', 'empty'];
          for (const k of odd) await s.put(k, k === 'empty' ? Buffer.alloc(0) : b(k));
          await s.put('bytes', allBytes);
          const expected = await seed(s, 700);
          const seen: StorageEntry[] = [];
          for await (const entry of s.snapshot()) seen.push(entry);
          assert.deepEqual(seen.map((e) => e.key), await s.list(''));
          assert.equal(seen.length, 700 + odd.length + 1);
          for (const e of seen) {
            assert.ok(Buffer.isBuffer(e.value), e.key);
            const want = expected.get(e.key) ?? (e.key === 'bytes' ? allBytes : e.key === 'empty' ? Buffer.alloc(0) : b(e.key));
            assert.deepEqual(e.value, want, e.key);
          }
        }));

      it('is one consistent moment: writes after it started are not seen, all before it are', () =>
        withStorage(async (s) => {
          const expected = await seed(s, 700);
          await s.delete('rec/0005');
          expected.delete('rec/0005');
          const iterator = s.snapshot()[Symbol.asyncIterator]();
          const first = await iterator.next();
          assert.equal(first.done, false);
          // Changes behind and ahead of the reading position, through every kind of write.
          await Promise.all([
            s.put('rec/0000', b('changed')),
            s.put('rec/0650', b('changed')),
            s.delete('rec/0001'),
            s.delete('rec/0690'),
            s.put('rec/0005', b('back again')),
            s.put('rec/9999', b('new at the end')),
            s.put('aaa', b('new at the start')),
            s.atomic([], [{ op: 'put', key: 'rec/0400', value: b('changed') }, { op: 'delete', key: 'rec/0401' }]),
          ]);
          const seen = await drain(iterator, [first.value as StorageEntry]);
          assert.deepEqual(seen.map((e) => e.key), [...expected.keys()]);
          for (const e of seen) assert.deepEqual(e.value, expected.get(e.key), e.key);
          // The writes did land.
          assert.deepEqual(await s.get('rec/0650'), b('changed'));
          assert.equal(await s.get('rec/0690'), null);
          // A snapshot started now sees them.
          const now: string[] = [];
          for await (const e of s.snapshot()) now.push(e.key);
          assert.ok(now.includes('rec/9999') && now.includes('aaa') && !now.includes('rec/0001'));
        }));

      it('a loop broken early releases the snapshot; writes and new snapshots go on', () =>
        withStorage(async (s) => {
          await seed(s, 300);
          for (let round = 0; round < 3; round++) {
            for await (const entry of s.snapshot()) {
              assert.equal(entry.key, 'rec/0000');
              break;
            }
            await s.put(`zz-after-${round}`, b('x'));
          }
          let count = 0;
          for await (const _ of s.snapshot()) count++;
          assert.equal(count, 303);
        }));

      it('does not alias the stored bytes', () =>
        withStorage(async (s) => {
          await s.put('k', b('original'));
          for await (const entry of s.snapshot()) entry.value.fill(0);
          assert.deepEqual(await s.get('k'), b('original'));
        }));

      it('rejects after close with ERR_STORAGE', () =>
        withStorage(async (s) => {
          await s.put('k', b('v'));
          await s.close();
          await assert.rejects(() => s.snapshot()[Symbol.asyncIterator]().next(), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE'));
        }));
    });

    it('keeps every committed change across close and reopen', () =>
      withStorage(async (s, fx) => {
        await s.put('keep', allBytes);
        await s.put('empty', Buffer.alloc(0));
        await s.put('overwritten', b('old'));
        await s.put('overwritten', b('new'));
        await s.put('deleted', b('x'));
        await s.delete('deleted');
        assert.equal(await s.atomic([{ key: 'cas', value: null }], [{ op: 'put', key: 'cas', value: b('won') }]), true);
        assert.equal(await s.atomic([{ key: 'cas', value: null }], [{ op: 'put', key: 'lost', value: b('no') }]), false);

        const r = await fx.reopen();
        assert.deepEqual(await r.get('keep'), allBytes);
        assert.deepEqual(await r.get('empty'), Buffer.alloc(0));
        assert.deepEqual(await r.get('overwritten'), b('new'));
        assert.equal(await r.get('deleted'), null);
        assert.deepEqual(await r.get('cas'), b('won'));
        assert.equal(await r.get('lost'), null);
        assert.deepEqual(await r.list(''), ['cas', 'empty', 'keep', 'overwritten']);
        // The reopened storage is fully usable, not a read-only snapshot.
        await r.put('after', b('reopen'));
        assert.deepEqual(await r.get('after'), b('reopen'));
      }));

    it('writes issued together take effect in call order, each seeing the ones before it', () =>
      withStorage(async (s) => {
        // Issued without awaiting in between: an implementation that batches them must keep this order.
        const results = await Promise.all([
          s.put('a', b('1')),
          s.atomic([{ key: 'a', value: b('1') }], [{ op: 'put', key: 'a', value: b('2') }]),
          s.atomic([{ key: 'a', value: b('1') }], [{ op: 'put', key: 'lost', value: b('x') }]),
          s.delete('a'),
          s.atomic([{ key: 'a', value: null }], [{ op: 'put', key: 'after-delete', value: b('y') }]),
          s.put('a', b('3')),
        ]);
        assert.deepEqual(results, [undefined, true, false, undefined, true, undefined]);
        assert.deepEqual(await s.get('a'), b('3'));
        assert.equal(await s.get('lost'), null);
        assert.deepEqual(await s.get('after-delete'), b('y'));
      }));

    it('writes issued right before close are committed, not dropped', () =>
      withStorage(async (s, fx) => {
        const writes = Array.from({ length: 20 }, (_, i) => s.put(`k${i}`, b(String(i))));
        const closing = s.close();
        await Promise.all(writes);
        await closing;
        const r = await fx.reopen();
        assert.equal((await r.list('k')).length, 20);
      }));

    it('refuses keys with a lone surrogate (no UTF-8 form) with ERR_STORAGE, and stores nothing', () =>
      withStorage(async (s) => {
        // Stored as U+FFFD (or invalid UTF-8), two different keys would list as one string.
        const isStorageError = (err: unknown): boolean => isKeyholdError(err, 'ERR_STORAGE');
        await assert.rejects(() => s.put('x\uD800', b('v')), isStorageError);
        await assert.rejects(() => s.put('x\uDC00y', b('v')), isStorageError);
        await assert.rejects(() => s.get('x\uDC00'), isStorageError);
        await assert.rejects(() => s.list('x\uD800'), isStorageError);
        await assert.rejects(() => s.atomic([], [{ op: 'put', key: 'ok', value: b('1') }, { op: 'put', key: '\uD800', value: b('2') }]), isStorageError);
        await assert.rejects(() => s.atomic([{ key: '\uDFFF', value: null }], [{ op: 'put', key: 'ok', value: b('1') }]), isStorageError);
        assert.deepEqual(await s.list(''), []);
        // A well-formed pair is fine.
        await s.put('x\u{1F600}', b('v'));
        assert.deepEqual(await s.list('x'), ['x\u{1F600}']);
      }));

    it('close is idempotent', () =>
      withStorage(async (s) => {
        await s.close();
        await s.close();
      }));

    it('rejects every operation after close with ERR_STORAGE', () =>
      withStorage(async (s) => {
        await s.put('k', b('v'));
        await s.close();
        const isStorageError = (err: unknown): boolean => isKeyholdError(err, 'ERR_STORAGE');
        // A function (not a promise) so a synchronous throw fails the test instead of passing it.
        await assert.rejects(() => s.get('k'), isStorageError);
        await assert.rejects(() => s.put('k', b('w')), isStorageError);
        await assert.rejects(() => s.delete('k'), isStorageError);
        await assert.rejects(() => s.list(''), isStorageError);
        await assert.rejects(() => s.atomic([], [{ op: 'put', key: 'k', value: b('w') }]), isStorageError);
      }));
  });
}
