import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKeyholdError } from '../../../src/errors.js';
import { postgresOptions } from '../../../src/storage/postgres-config.js';
import { PostgresStorage, type PostgresOptions } from '../../../src/storage/postgres.js';
import type { Storage, StorageEntry } from '../../../src/storage/types.js';
import { storageContract } from '../../contract/storage.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { sleep } from '../../helpers/processes.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

let server: TestPostgres | undefined;
let databases = 0;
/** One PostgreSQL server for the file (started on first use), a fresh database per fixture. */
async function freshDatabase(): Promise<PostgresOptions> {
  server ??= await startPostgres();
  const url = await server.createDatabase(`t${++databases}`);
  return postgresOptions({ url, passwordFile: server.passwordFile });
}
after(() => server?.destroy());

storageContract('postgres', async () => {
  const options = await freshDatabase();
  let current: Storage = await PostgresStorage.open(options);
  return {
    storage: current,
    reopen: async () => {
      await current.close();
      current = await PostgresStorage.open(options);
      return current;
    },
    cleanup: async () => {
      await current.close();
    },
  };
});

async function collect(it: AsyncIterable<StorageEntry>): Promise<StorageEntry[]> {
  const out: StorageEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('PostgresStorage', () => {
  let options: PostgresOptions;
  let storage: PostgresStorage;

  before(async () => {
    options = await freshDatabase();
    storage = await PostgresStorage.open(options);
  });
  after(async () => {
    await storage?.close();
  });

  it('rejects keys UTF-8 cannot hold faithfully (lone surrogates), as SQLite does', async () => {
    const isStorageError = (err: unknown): boolean => isKeyholdError(err, 'ERR_STORAGE');
    await assert.rejects(() => storage.put('x\uD800', b('v')), isStorageError);
    await assert.rejects(() => storage.get('x\uDC00'), isStorageError);
    await assert.rejects(() => storage.list('x\uD800'), isStorageError);
    await assert.rejects(() => storage.atomic([], [{ op: 'delete', key: '\uD800' }]), isStorageError);
  });

  it('holds a key with U+0000 (a text column could not)', async () => {
    await storage.put('nul/\u0000/x', b('v'));
    assert.deepEqual(await storage.get('nul/\u0000/x'), b('v'));
    assert.deepEqual(await storage.list('nul/'), ['nul/\u0000/x']);
  });

  it('creates its schema once and records the version; a newer schema is refused', async () => {
    const rows = (await storage.pool.query('SELECT version FROM schema_version')).rows as { version: number }[];
    assert.equal(rows.length, 1);
    assert.ok((rows[0]?.version ?? 0) >= 1);
    // Opening again (a second replica) changes nothing.
    const again = await PostgresStorage.open(options);
    await again.close();
    assert.equal((await storage.pool.query('SELECT count(*)::int AS n FROM schema_version')).rows[0].n, 1);
    await storage.pool.query('UPDATE schema_version SET version = version + 100');
    try {
      await assert.rejects(() => PostgresStorage.open(options), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE') && /newer/.test((err as Error).message));
    } finally {
      await storage.pool.query('UPDATE schema_version SET version = version - 100');
    }
  });

  it('an atomic check holds against another process writing the same keys (two stores, one database)', async () => {
    const other = await PostgresStorage.open(options);
    try {
      // 2 x 25 compare-and-set increments racing through two pools: every success must count.
      const key = 'shared-counter';
      const increment = async (s: Storage): Promise<void> => {
        for (;;) {
          const cur = await s.get(key);
          const next = (cur === null ? 0 : Number(cur.toString('utf8'))) + 1;
          if (await s.atomic([{ key, value: cur }], [{ op: 'put', key, value: b(String(next)) }])) return;
        }
      };
      await Promise.all(Array.from({ length: 50 }, (_, i) => increment(i % 2 === 0 ? storage : other)));
      assert.deepEqual(await storage.get(key), b('50'));
      // Create-if-absent from both at once: exactly one wins.
      const wins = await Promise.all([storage, other, storage, other].map((s, i) => s.atomic([{ key: 'once', value: null }], [{ op: 'put', key: 'once', value: b(String(i)) }])));
      assert.equal(wins.filter(Boolean).length, 1);
    } finally {
      await other.close();
    }
  });

  it('a failing write in a group-committed batch fails alone', async () => {
    // A value over the statement limit is not easy to make; a trigger that refuses one key is.
    await storage.pool.query(`CREATE FUNCTION refuse_bad() RETURNS trigger AS $$ BEGIN IF NEW.key = '\\x626164'::bytea THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await storage.pool.query(`CREATE TRIGGER refuse_bad BEFORE INSERT OR UPDATE ON kv FOR EACH ROW EXECUTE FUNCTION refuse_bad()`);
    try {
      const results = await Promise.allSettled([storage.put('good1', b('1')), storage.put('bad', b('x')), storage.put('good2', b('2'))]);
      assert.equal(results[0].status, 'fulfilled');
      assert.equal(results[1].status, 'rejected');
      assert.ok(isKeyholdError((results[1] as PromiseRejectedResult).reason, 'ERR_STORAGE'));
      assert.equal(results[2].status, 'fulfilled');
      assert.deepEqual(await storage.get('good1'), b('1'));
      assert.deepEqual(await storage.get('good2'), b('2'));
      assert.equal(await storage.get('bad'), null);
    } finally {
      await storage.pool.query('DROP TRIGGER refuse_bad ON kv; DROP FUNCTION refuse_bad()');
    }
  });

  it('a statement over the timeout fails as unavailable, not as a hang', async () => {
    const s = await PostgresStorage.open({ ...options, statementTimeoutMs: 200 });
    const locker = await s.pool.connect();
    try {
      await s.put('locked', b('v'));
      // Another session holds the row lock: the write waits, then the server cancels it.
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM kv WHERE key = $1 FOR UPDATE`, [b('locked')]);
      const started = Date.now();
      await assert.rejects(() => s.put('locked', b('w')), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE_UNAVAILABLE'));
      assert.ok(Date.now() - started < 3000);
      await locker.query('ROLLBACK');
      assert.deepEqual(await s.get('locked'), b('v'));
    } finally {
      locker.release();
      await s.close();
    }
  });

  describe('snapshot', () => {
    it('yields every record ascending by byte order, values intact', async () => {
      const opts = await freshDatabase();
      const s = await PostgresStorage.open(opts);
      try {
        const keys = ['b', 'a/b', 'a', 'u/\u{1F600}', 'u/\uFF21', 'empty'];
        for (const k of keys) await s.put(k, k === 'empty' ? Buffer.alloc(0) : b(k));
        const got = await collect(s.snapshot());
        assert.deepEqual(got.map((e) => e.key), ['a', 'a/b', 'b', 'empty', 'u/\uFF21', 'u/\u{1F600}']);
        for (const e of got) assert.deepEqual(e.value, e.key === 'empty' ? Buffer.alloc(0) : b(e.key));
        assert.deepEqual(await collect((await PostgresStorage.open(await freshDatabase())).snapshot()), []);
      } finally {
        await s.close();
      }
    });

    it('is one consistent moment while writes go on, across many pages', async () => {
      const opts = await freshDatabase();
      const s = await PostgresStorage.open(opts);
      try {
        // 1200 records: three pages. Every one holds "0" before the snapshot starts.
        const n = 1200;
        const key = (i: number) => `r/${String(i).padStart(5, '0')}`;
        await Promise.all(Array.from({ length: n }, (_, i) => s.put(key(i), b('0'))));
        const it = s.snapshot()[Symbol.asyncIterator]();
        const first = await it.next();
        assert.equal(first.done, false);
        // Now rewrite everything, add and delete records, while the snapshot is being read.
        await Promise.all(Array.from({ length: n }, (_, i) => s.put(key(i), b('1'))));
        await s.put('r/new', b('1'));
        await s.delete(key(n - 1));
        const rest: StorageEntry[] = [first.value as StorageEntry];
        for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
        assert.equal(rest.length, n);
        assert.deepEqual(rest.map((e) => e.key), Array.from({ length: n }, (_, i) => key(i)));
        assert.ok(rest.every((e) => e.value.toString() === '0'), 'a write made during the snapshot showed in it');
        // And the store itself moved on.
        assert.deepEqual(await s.get(key(0)), b('1'));
      } finally {
        await s.close();
      }
    });

    it('returns its connection when abandoned mid-way', async () => {
      const opts = await freshDatabase();
      const s = await PostgresStorage.open({ ...opts, poolMax: 2 });
      try {
        for (let i = 0; i < 1100; i++) await s.put(`k/${String(i).padStart(4, '0')}`, b('v'));
        for (let round = 0; round < 5; round++) {
          for await (const e of s.snapshot()) {
            assert.ok(e.key.startsWith('k/'));
            break;
          }
        }
        // With two connections and five abandoned snapshots, writes still get one.
        await s.put('after', b('v'));
        assert.deepEqual(await s.get('after'), b('v'));
        assert.equal(s.pool.totalCount - s.pool.idleCount, 0);
      } finally {
        await s.close();
      }
    });
  });

  describe('when PostgreSQL goes away', () => {
    it('fails with ERR_STORAGE_UNAVAILABLE while it is down and recovers by itself when it is back', async () => {
      const opts = await freshDatabase();
      const s = await PostgresStorage.open({ ...opts, connectTimeoutMs: 1000 });
      try {
        await s.put('before', b('v'));
        // Connections in the pool, idle, when the server goes down.
        await Promise.all([s.get('before'), s.get('before'), s.list('')]);
        server!.stop('immediate');
        const unavailable = (err: unknown): boolean => isKeyholdError(err, 'ERR_STORAGE_UNAVAILABLE');
        await assert.rejects(() => s.get('before'), unavailable);
        await assert.rejects(() => s.put('during', b('v')), unavailable);
        await assert.rejects(() => s.list(''), unavailable);
        await assert.rejects(() => s.atomic([], [{ op: 'put', key: 'during', value: b('v') }]), unavailable);
        await assert.rejects(() => collect(s.snapshot()), unavailable);
        server!.start();
        // The same store, not reopened: new connections replace the dead ones.
        let ok = false;
        for (let i = 0; i < 50 && !ok; i++) {
          ok = await s.get('before').then((v) => v !== null, () => false);
          if (!ok) await sleep(100);
        }
        assert.ok(ok, 'storage did not recover');
        await s.put('after', b('v'));
        assert.deepEqual(await s.list(''), ['after', 'before']);
        // A restart while connections are idle in the pool: the first use after it must not be a 500-class fault.
        server!.restart('fast');
        const first = await s.get('before').then(() => 'ok', (err: unknown) => (unavailable(err) ? 'unavailable' : `other: ${String(err)}`));
        assert.ok(first === 'ok' || first === 'unavailable', first);
        assert.deepEqual(await s.get('after'), b('v'));
      } finally {
        await s.close();
      }
    });

    it('opening a store whose server is down fails as unavailable', async () => {
      const opts = await freshDatabase();
      server!.stop('fast');
      try {
        await assert.rejects(() => PostgresStorage.open({ ...opts, connectTimeoutMs: 1000 }), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE_UNAVAILABLE'));
      } finally {
        server!.start();
      }
    });
  });
});
