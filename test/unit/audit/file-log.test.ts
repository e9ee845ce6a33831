import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { isKeyholdError } from '../../../src/errors.js';
import { GENESIS_HASH, type AuditRecord, type SealedAuditEntry } from '../../../src/audit/entry.js';
import { FileAuditLog, type AuditIo } from '../../../src/audit/file-log.js';
import { verifyAuditFile } from '../../../src/audit/verify.js';
import { tempDir } from '../../helpers/temp.js';

const root = tempDir('keyhold-audit-log-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let fileCounter = 0;
const newFile = (): string => path.join(root, `audit-${++fileCounter}.log`);

const rec = (i: number): AuditRecord => ({
  type: i % 2 === 0 ? 'response' : 'request',
  requestId: `req-${i}`,
  operation: 'secrets.read',
  path: `secrets/app/${i}`,
  ...(i % 2 === 0 ? { outcome: { status: 200 } } : { actor: { tokenId: `tok-${i}`, policies: ['dev'] } }),
});

const readEntries = (file: string): SealedAuditEntry[] =>
  fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as SealedAuditEntry);

const isUnavailable = (err: unknown): boolean => isKeyholdError(err, 'ERR_AUDIT_UNAVAILABLE');

async function writeLog(file: string, count: number): Promise<void> {
  const log = await FileAuditLog.open(file);
  for (let i = 1; i <= count; i++) await log.append(rec(i));
  await log.close();
}

describe('FileAuditLog', () => {
  it('creates the file with mode 0600 and writes a verifiable chain', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file);
    assert.deepEqual(log.head, { seq: 0, hash: GENESIS_HASH });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    await log.append(rec(1));
    await log.append({ ...rec(2), fields: { keyVersion: '3', plaintextLength: '12' } });
    assert.equal(log.head.seq, 2);
    await log.close();
    const entries = readEntries(file);
    assert.deepEqual(entries.map((e) => e.seq), [1, 2]);
    assert.equal(entries[0]?.prev, GENESIS_HASH);
    assert.equal(entries[1]?.prev, entries[0]?.hash);
    assert.deepEqual(entries[1]?.fields, { keyVersion: '3', plaintextLength: '12' });
    assert.ok(!Number.isNaN(Date.parse(entries[0]?.time ?? '')));
    assert.deepEqual(await verifyAuditFile(file), { ok: true, entries: 2, lastHash: entries[1]?.hash });
  });

  it('continues the chain across close and reopen', async () => {
    const file = newFile();
    await writeLog(file, 3);
    const log = await FileAuditLog.open(file);
    assert.equal(log.repairedBytes, 0);
    assert.equal(log.head.seq, 3);
    assert.equal(log.head.hash, readEntries(file)[2]?.hash);
    await log.append(rec(4));
    await log.append(rec(5));
    const head = log.head;
    await log.close();
    const entries = readEntries(file);
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
    assert.equal(entries[3]?.prev, entries[2]?.hash);
    assert.deepEqual(await verifyAuditFile(file, head), { ok: true, entries: 5, lastHash: head.hash });
  });

  it('1000 concurrent appends get seq 1..1000 in call order with far fewer flushes', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => log.append(rec(i + 1))));
    assert.ok(log.flushes < 1000, `flushes = ${log.flushes}`);
    assert.ok(log.flushes >= 1);
    assert.equal(log.head.seq, 1000);
    await log.close();
    const entries = readEntries(file);
    assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 1000 }, (_, i) => i + 1));
    assert.deepEqual(entries.map((e) => e.requestId), Array.from({ length: 1000 }, (_, i) => `req-${i + 1}`));
    const result = await verifyAuditFile(file);
    assert.equal(result.ok, true);
    assert.equal(result.entries, 1000);
  });

  it('resolves only after fdatasync and batches appends that arrive during a flush', async () => {
    const file = newFile();
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let syncs = 0;
    const log = await FileAuditLog.open(file, {
      wrapIo: (io) => ({
        ...io,
        write: (d) => io.write(d),
        datasync: async () => {
          syncs += 1;
          if (syncs === 1) await gate;
          await io.datasync();
        },
        close: () => io.close(),
      }),
    });
    let firstDone = false;
    const first = log.append(rec(1)).then(() => (firstDone = true));
    while (syncs === 0) await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 50 }, (_, i) => log.append(rec(i + 2)));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(firstDone, false, 'append resolved before its fdatasync completed');
    assert.equal(log.head.seq, 0);
    release();
    await Promise.all([first, ...rest]);
    assert.equal(log.flushes, 2);
    assert.equal(syncs, 2);
    await log.close();
    assert.equal((await verifyAuditFile(file)).entries, 51);
  });

  it('drops a torn final line on open, says so, and records it as the first entry after the repair', async () => {
    const file = newFile();
    await writeLog(file, 3);
    const intact = fs.readFileSync(file);
    const torn = '{"actor":{"policies":["dev"],"tok';
    fs.appendFileSync(file, torn);
    const warnings: string[] = [];
    const log = await FileAuditLog.open(file, { warn: (m) => warnings.push(m) });
    assert.equal(log.repairedBytes, Buffer.byteLength(torn));
    assert.equal(log.repairedNewline, false);
    assert.ok(warnings.some((w) => w.includes(`dropped ${Buffer.byteLength(torn)} bytes`)), warnings.join('\n'));
    assert.deepEqual(fs.readFileSync(file).subarray(0, intact.length), intact);
    await log.append(rec(5));
    await log.close();
    const entries = readEntries(file) as unknown as Array<{ seq: number; type: string; data?: Record<string, unknown> }>;
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
    assert.equal(entries[3]?.type, 'repair');
    assert.equal(entries[3]?.data?.['droppedBytes'], Buffer.byteLength(torn));
    assert.equal((await verifyAuditFile(file)).ok, true);
  });

  it('keeps a complete, chain-correct last entry that lost only its newline (adds the newline)', async () => {
    const file = newFile();
    await writeLog(file, 2);
    const content = fs.readFileSync(file);
    fs.writeFileSync(file, content.subarray(0, content.length - 1));
    const warnings: string[] = [];
    const log = await FileAuditLog.open(file, { warn: (m) => warnings.push(m) });
    assert.equal(log.head.seq, 2);
    assert.equal(log.repairedBytes, 0);
    assert.equal(log.repairedNewline, true);
    assert.equal(warnings.length, 1);
    await log.close();
    assert.deepEqual(fs.readFileSync(file), content);
  });

  it('drops a last line that is sealed but does not follow the chain', async () => {
    const file = newFile();
    await writeLog(file, 3);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    // Entry 2 again as the last line, without newline: valid on its own, wrong seq and prev here.
    fs.appendFileSync(file, lines[1] ?? '');
    const log = await FileAuditLog.open(file);
    assert.equal(log.repairedBytes, Buffer.byteLength(lines[1] ?? ''));
    assert.equal(log.head.seq, 4); // the repair entry
    await log.close();
  });

  it('refuses to open a log whose chain is broken before the tail', async () => {
    for (const damage of [
      (text: string) => text.replace('req-2', 'req-X'), // altered middle entry
      (text: string) => `${text}garbage\n`, // complete but invalid final line
      (text: string) => text.split('\n').filter((_, i) => i !== 1).join('\n'), // removed entry
    ]) {
      const file = newFile();
      await writeLog(file, 3);
      const damaged = damage(fs.readFileSync(file, 'utf8'));
      fs.writeFileSync(file, damaged);
      await assert.rejects(FileAuditLog.open(file), (err: unknown) => isKeyholdError(err, 'ERR_AUDIT_CHAIN_BROKEN'));
      assert.equal(fs.readFileSync(file, 'utf8'), damaged, 'a refused file must be left untouched');
    }
  });

  it('a write failure (underlying file closed) rejects, and every later append rejects too', async () => {
    const file = newFile();
    let real: AuditIo | undefined;
    const log = await FileAuditLog.open(file, { wrapIo: (io) => (real = io) });
    await log.append(rec(1));
    assert.equal(log.healthy, true);
    await real?.close();
    const failing = [log.append(rec(2)), log.append(rec(3))];
    for (const p of failing) await assert.rejects(p, isUnavailable);
    assert.equal(log.healthy, false);
    await assert.rejects(log.append(rec(4)), isUnavailable);
    assert.equal(log.head.seq, 1);
    await log.close();
    assert.deepEqual(await verifyAuditFile(file), { ok: true, entries: 1, lastHash: log.head.hash });
  });

  it('an fdatasync failure fails the log at once: the batch in flight and everything queued behind it are refused, and so is every append until the recovery probe has run', async () => {
    const file = newFile();
    let failNext = false;
    const log = await FileAuditLog.open(file, {
      wrapIo: (io) => ({
        ...io,
        write: (d) => io.write(d),
        datasync: async () => {
          if (failNext) {
            failNext = false;
            throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
          }
          await io.datasync();
        },
        close: () => io.close(),
      }),
    });
    await log.append(rec(1));
    failNext = true;
    const inFlight = log.append(rec(2));
    const queued = log.append(rec(3));
    await assert.rejects(inFlight, (err: unknown) => isUnavailable(err) && /EIO/.test((err as Error).message));
    await assert.rejects(queued, isUnavailable);
    assert.equal(log.healthy, false);
    await assert.rejects(log.append(rec(4)), isUnavailable);
    await log.close();
  });

  it('fails to open when the path is a directory', async () => {
    const dir = path.join(root, 'is-a-dir');
    fs.mkdirSync(dir);
    await assert.rejects(FileAuditLog.open(dir), isUnavailable);
  });

  it('rejects a malformed record without consuming a seq', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file);
    await assert.rejects(log.append({ ...rec(1), type: 'other' as 'request' }), (err: unknown) => isKeyholdError(err, 'ERR_INTERNAL'));
    await assert.rejects(log.append({ ...rec(1), fields: { n: 1 as unknown as string } }), (err: unknown) => isKeyholdError(err, 'ERR_INTERNAL'));
    await assert.rejects(log.append({ ...rec(1), outcome: { status: NaN } }), (err: unknown) => isKeyholdError(err, 'ERR_INTERNAL'));
    assert.equal(log.healthy, true);
    await log.append({ ...rec(1), actor: undefined });
    await log.close();
    assert.deepEqual(readEntries(file).map((e) => e.seq), [1]);
    assert.equal((await verifyAuditFile(file)).ok, true);
  });

  it('refuses a second open of the same file in this process, and appends after close', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file);
    await assert.rejects(FileAuditLog.open(file), isUnavailable);
    const pending = log.append(rec(1));
    await log.close();
    await pending;
    await assert.rejects(log.append(rec(2)), isUnavailable);
    await log.close(); // idempotent
    const again = await FileAuditLog.open(file);
    assert.equal(again.head.seq, 1);
    await again.close();
  });

  it('refuses the second of two opens of the same file racing in this process, and a failed open leaves the path free', async () => {
    const file = newFile();
    const results = await Promise.allSettled([FileAuditLog.open(file), FileAuditLog.open(file)]);
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    assert.equal(opened.length, 1, 'two logs open on one file');
    assert.ok(results.some((r) => r.status === 'rejected' && isUnavailable(r.reason)));
    await opened[0]?.append(rec(1));
    await opened[0]?.close();
    const intact = fs.readFileSync(file);
    fs.writeFileSync(file, 'garbage\n');
    await assert.rejects(FileAuditLog.open(file), (err: unknown) => isKeyholdError(err, 'ERR_AUDIT_CHAIN_BROKEN'));
    fs.writeFileSync(file, intact);
    const again = await FileAuditLog.open(file);
    assert.equal(again.head.seq, 1);
    await again.close();
  });
});
