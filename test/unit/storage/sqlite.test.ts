import fs from 'node:fs';
import path from 'node:path';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { isKeyholdError } from '../../../src/errors.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import type { Storage } from '../../../src/storage/types.js';
import { storageContract } from '../../contract/storage.js';
import { tempDir } from '../../helpers/temp.js';


storageContract('sqlite', async () => {
  const dir = tempDir('keyhold-sqlite-');
  const file = path.join(dir, 'keyhold.db');
  let current: Storage = SqliteStorage.open(file);
  return {
    storage: current,
    reopen: async () => {
      await current.close();
      current = SqliteStorage.open(file);
      return current;
    },
    cleanup: async () => {
      await current.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStorage', () => {
  let dir: string;
  let file: string;
  let storage: SqliteStorage;

  before(() => {
    dir = tempDir('keyhold-sqlite-');
    // A missing parent directory is created (0700) by open().
    file = path.join(dir, 'nested', 'data', 'keyhold.db');
    storage = SqliteStorage.open(file);
  });

  after(async () => {
    await storage.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs in WAL mode with synchronous=FULL and a 5 s busy timeout', () => {
    assert.equal(storage.pragma('journal_mode'), 'wal');
    assert.equal(storage.pragma('synchronous'), 2);
    assert.equal(storage.pragma('busy_timeout'), 5000);
  });

  it('creates the database file 0600 and its missing parent directories 0700', async () => {
    await storage.put('k', Buffer.from('v'));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    // The WAL file holds data too; SQLite must have given it the database file's mode.
    assert.equal(fs.statSync(`${file}-wal`).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, 'nested')).mode & 0o777, 0o700);
  });

  it('has exactly one table, kv(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID', () => {
    // A second, read-only connection: the schema is a property of the file, not of our handle.
    const db = new Database(file, { readonly: true });
    try {
      const tables = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table'").all();
      assert.deepEqual(tables, [
        { name: 'kv', sql: 'CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID' },
      ]);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  it('wraps open failures in ERR_STORAGE', () => {
    // A directory is not a database file.
    assert.throws(() => SqliteStorage.open(dir), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE'));
    const garbage = path.join(dir, 'garbage.db');
    fs.writeFileSync(garbage, Buffer.alloc(4096, 0x5a), { mode: 0o600 });
    assert.throws(() => SqliteStorage.open(garbage), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE'));
  });

  it('rejects keys that SQLite cannot store faithfully (lone surrogates)', async () => {
    const isStorageError = (err: unknown): boolean => isKeyholdError(err, 'ERR_STORAGE');
    await assert.rejects(() => storage.put('x\uD800', Buffer.from('v')), isStorageError);
    await assert.rejects(() => storage.get('x\uDC00'), isStorageError);
    await assert.rejects(() => storage.list('x\uD800'), isStorageError);
    await assert.rejects(() => storage.atomic([], [{ op: 'delete', key: '\uD800' }]), isStorageError);
  });

  it('close is idempotent', async () => {
    const s = SqliteStorage.open(path.join(dir, 'twice.db'));
    await s.close();
    await s.close();
    assert.throws(() => s.pragma('journal_mode'), (err: unknown) => isKeyholdError(err, 'ERR_STORAGE'));
  });
});
