import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { terminalProgress } from '../../../src/backup/progress.js';
import { restoreBackup } from '../../../src/backup/restore.js';
import { BackupFile } from '../../../src/backup/read.js';
import { writeBackup } from '../../../src/backup/write.js';
import { Barrier } from '../../../src/barrier/barrier.js';
import { initializeSeal, unseal } from '../../../src/barrier/seal.js';
import { KeyholdError } from '../../../src/errors.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { MemoryStorage } from '../../../src/storage/memory.js';
import type { Storage, StorageCheck, StorageEntry, StorageWrite } from '../../../src/storage/types.js';
import { keyholdCode } from '../../helpers/errors.js';
import { tempDir } from '../../helpers/server.js';

// Backup and restore over the Storage and Hsm interfaces, on the in-memory implementations. The
// CLI against a real server, SQLite and SoftHSM: test/integration/backup/.
const dir = tempDir('keyhold-backup-unit-');
let hsm: MemoryHsm;
let source: MemoryStorage;
let file: string;

async function entries(storage: Storage): Promise<StorageEntry[]> {
  const out: StorageEntry[] = [];
  for await (const entry of storage.snapshot()) out.push(entry);
  return out;
}

/** Fails when the target is opened: restore must not get that far. */
const mustNotOpen = (): Storage => assert.fail('the target store was opened');

before(async () => {
  hsm = await MemoryHsm.open();
  source = new MemoryStorage();
  const { rootKey } = await initializeSeal(source, hsm);
  const barrier = new Barrier(source, rootKey);
  await barrier.putJson('sys/initialized', { at: 'then' });
  // More records than one restore batch, some large, across domains.
  for (let i = 0; i < 1500; i++) await barrier.putJson(`secrets/data/app/${i}/1`, { v: randomBytes(i % 7 === 0 ? 4096 : 16).toString('base64') });
  for (let i = 0; i < 20; i++) await barrier.putJson(`keys/k${i}`, { name: `k${i}` });
  barrier.seal();
  file = path.join(dir, 'store.backup');
  await writeBackup(source, file);
});

after(async () => {
  await hsm.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('backup', () => {
  it('writes a 0600 file, atomically (no temporary file left), with a manifest that counts and checksums', async () => {
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['store.backup']);
    const backup = await BackupFile.open(file);
    try {
      const m = backup.manifest;
      assert.equal(m.format, 'keyhold-backup');
      assert.equal(m.version, 1);
      assert.equal(m.records, 1 + 1 + 1500 + 20);
      assert.deepEqual(m.counts, { core: 1, data: 1521, 'data/sys': 1, 'data/secrets': 1500, 'data/keys': 20 });
      assert.match(m.sha256, /^[0-9a-f]{64}$/);
      assert.ok(m.seal && m.seal.tokenSerial === hsm.token.serial);
      assert.equal(m.rootKeyGeneration, 1, 'the generation the seal record names');
      assert.ok(Math.abs(Date.parse(m.createdAt) - Date.now()) < 60_000);
      await backup.verify();
      // Records as stored: byte for byte what the store holds, in its order.
      const fromFile: StorageEntry[] = [];
      for await (const e of backup.records()) fromFile.push(e);
      assert.deepEqual(fromFile, await entries(source));
    } finally {
      await backup.close();
    }
  });

  it('of a store that is not initialised is refused, and leaves no file', async () => {
    const empty = new MemoryStorage();
    await empty.put('data/x', Buffer.from('y'));
    const out = path.join(dir, 'never.backup');
    await assert.rejects(writeBackup(empty, out), keyholdCode('ERR_NOT_INITIALIZED'));
    assert.deepEqual(fs.readdirSync(dir), ['store.backup']);
  });

  it('shows progress (records, bytes, rate) only on a terminal', async () => {
    const lines: string[] = [];
    const stream = (isTTY: boolean) => ({ isTTY, write: (s: string) => lines.push(s) }) as unknown as NodeJS.WriteStream;
    assert.equal(terminalProgress('backup', stream(false)), undefined);
    const out = path.join(dir, 'progress.backup');
    await writeBackup(source, out, terminalProgress('backup', stream(true)));
    fs.rmSync(out);
    const last = lines.at(-1) ?? '';
    assert.match(last, /^\r.*keyhold backup: 1522 records, \d+\.\d MiB, \d+ records\/s, \d+\.\d MiB\/s\n$/);
  });

  it('replaces an existing file atomically', async () => {
    const out = path.join(dir, 'again.backup');
    fs.writeFileSync(out, 'old content');
    const manifest = await writeBackup(source, out);
    const backup = await BackupFile.open(out);
    assert.equal(backup.manifest.sha256, manifest.sha256);
    await backup.close();
    fs.rmSync(out);
  });
});

describe('restore', () => {
  it('into an empty store: byte-identical records, unsealed by the same HSM, barrier records readable', async () => {
    const target = new MemoryStorage();
    const result = await restoreBackup(file, () => MemoryStorage.reopen(target.records), hsm);
    assert.equal(result.records, 1522);
    assert.deepEqual(await entries(target), await entries(source));
    const { rootKey } = await unseal(target, hsm);
    assert.deepEqual(await new Barrier(target, rootKey).getJson('secrets/data/app/3/1'), await new Barrier(source, rootKey).getJson('secrets/data/app/3/1'));
  });

  it('refuses a damaged or altered file (ERR_BACKUP_INVALID) before opening the target', async () => {
    const original = fs.readFileSync(file);
    const manifestStart = original.lastIndexOf(Buffer.from('{"format"'));
    const cases: Array<[string, Buffer]> = [
      ['header', flip(original, 3)],
      ['first record key', flip(original, 17 + 4 + 2)],
      ['a value in the middle', flip(original, Math.floor(manifestStart / 2))],
      ['the end-of-records marker', flip(original, manifestStart - 1)],
      ['the manifest checksum', Buffer.from(original.toString('latin1').replace(/"sha256":"(.)/, (_m, c: string) => `"sha256":"${c === '0' ? '1' : '0'}`), 'latin1')],
      ['the manifest counts', Buffer.from(original.toString('latin1').replace('"records":1522', '"records":1523'), 'latin1')],
      ['the trailer', flip(original, original.length - 1)],
      ['cut short', original.subarray(0, original.length - 100)],
      ['cut inside the records', Buffer.concat([original.subarray(0, 5000), original.subarray(manifestStart)])],
      ['a byte appended', Buffer.concat([original, Buffer.from([0])])],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, bytes] of cases) {
      const bad = path.join(dir, 'bad.backup');
      fs.writeFileSync(bad, bytes);
      await assert.rejects(restoreBackup(bad, mustNotOpen, hsm), keyholdCode('ERR_BACKUP_INVALID'), what);
      fs.rmSync(bad);
    }
  });

  it('refuses a store that is not empty (ERR_STORE_NOT_EMPTY) and writes nothing', async () => {
    const target = new MemoryStorage();
    await target.put('something', Buffer.from('here'));
    await assert.rejects(restoreBackup(file, () => MemoryStorage.reopen(target.records), hsm), keyholdCode('ERR_STORE_NOT_EMPTY'));
    assert.deepEqual(await entries(target), [{ key: 'something', value: Buffer.from('here') }]);
  });

  it('refuses another HSM (ERR_HSM_KEY_MISSING, naming the sealing token) before opening the target', async () => {
    const other = await MemoryHsm.open();
    try {
      await assert.rejects(restoreBackup(file, mustNotOpen, other), (err: unknown) =>
        keyholdCode('ERR_HSM_KEY_MISSING')(err) && (err as Error).message.includes(hsm.token.serial) && /recovery shares/.test((err as Error).message));
    } finally {
      await other.close();
    }
  });

  it('a failure part way leaves the target empty and never initialised', async () => {
    /** Storage that fails its third atomic batch, as a full disk or a lost database would. */
    class FailingStorage extends MemoryStorage {
      batches = 0;
      override async atomic(checks: readonly StorageCheck[], writes: readonly StorageWrite[]): Promise<boolean> {
        if (writes.some((w) => w.op === 'put') && ++this.batches === 3) throw new KeyholdError('ERR_STORAGE', 'disk full');
        return super.atomic(checks, writes);
      }
    }
    const target = new FailingStorage();
    await assert.rejects(restoreBackup(file, () => target, hsm), keyholdCode('ERR_STORAGE'));
    assert.equal(target.batches, 3);
    const left = new MemoryStorage(target.records);
    assert.deepEqual(await entries(left), []);
  });
});

function flip(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}
