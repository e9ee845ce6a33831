/** The log's file deleted or replaced while open fails it for good; a failed write recovers once writing works again. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { isKeyholdError } from '../../../src/errors.js';
import { FileAuditLog, type AuditIo } from '../../../src/audit/file-log.js';
import { verifyAuditFile } from '../../../src/audit/verify.js';
import { readLines, rec } from './support.js';
import { tempDir } from '../../helpers/temp.js';
import { pollUntil } from '../../helpers/wait.js';

const root = tempDir('keyhold-audit-rec-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const newFile = () => path.join(root, `audit-${++n}.log`);
const isUnavailable = (err: unknown) => isKeyholdError(err, 'ERR_AUDIT_UNAVAILABLE');

describe('file identity', () => {
  for (const [what, change, reason] of [
    ['deleted', (f: string) => fs.unlinkSync(f), 'FILE_DELETED'],
    ['replaced', (f: string) => { fs.copyFileSync(f, `${f}.copy`); fs.renameSync(`${f}.copy`, f); }, 'FILE_REPLACED'],
    // Same inode, so only the size tells: cut in place, or written by someone else.
    ['truncated in place', (f: string) => fs.truncateSync(f, 0), 'FILE_TRUNCATED'],
    ['appended to by another writer', (f: string) => fs.appendFileSync(f, '{"seq":999}\n'), 'FILE_APPENDED'],
  ] as const) {
    it(`a file ${what} while open fails the log within the probe period, for good`, async () => {
      const file = newFile();
      const log = await FileAuditLog.open(file, { probeIntervalMs: 50 });
      await log.append(rec(1));
      change(file);
      await pollUntil('failure', () => !log.healthy, { timeoutMs: 1000, intervalMs: 10 });
      assert.equal(log.status.reason, reason);
      assert.equal(log.status.terminal, true);
      await assert.rejects(log.append(rec(2)), isUnavailable);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(log.healthy, false, 'no recovery onto a file that is not the log');
      await log.close();
    });
  }

  it('a symbolic link at the path is refused at open (to a valid log, or dangling), and nothing is written through it', async () => {
    const real = newFile();
    const log = await FileAuditLog.open(real);
    await log.append(rec(1));
    await log.close();
    const before = fs.readFileSync(real);
    const link = newFile();
    fs.symlinkSync(real, link);
    await assert.rejects(FileAuditLog.open(link), (err) => isUnavailable(err) && /symbolic link/.test((err as Error).message));
    assert.deepEqual(fs.readFileSync(real), before);
    const dangling = newFile();
    const target = newFile();
    fs.symlinkSync(target, dangling);
    await assert.rejects(FileAuditLog.open(dangling), (err) => isUnavailable(err) && /symbolic link/.test((err as Error).message));
    assert.equal(fs.existsSync(target), false, 'a file was created through the link');
  });

  it('the file moved aside and a symbolic link to it put at the path while open fails the log (FILE_REPLACED)', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file, { probeIntervalMs: 50 });
    await log.append(rec(1));
    fs.renameSync(file, `${file}.moved`);
    fs.symlinkSync(`${file}.moved`, file);
    await pollUntil('failure', () => !log.healthy, { timeoutMs: 1000, intervalMs: 10 });
    assert.equal(log.status.reason, 'FILE_REPLACED');
    await assert.rejects(log.append(rec(2)), isUnavailable);
    await log.close();
  });

  it('a batch written after the file was cut in place is not acknowledged', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file, { probeIntervalMs: 60_000 });
    await log.append(rec(1));
    fs.truncateSync(file, 0);
    await assert.rejects(log.append(rec(2)), isUnavailable);
    assert.equal(log.status.reason, 'FILE_TRUNCATED');
    await log.close();
  });

  it('a batch written after the file was deleted is not acknowledged', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file, { probeIntervalMs: 60_000 });
    await log.append(rec(1));
    fs.unlinkSync(file);
    await assert.rejects(log.append(rec(2)), isUnavailable);
    assert.equal(log.status.reason, 'FILE_DELETED');
    await log.close();
  });
});

describe('recovery without restart', () => {
  it('after a failed write, the probe cuts the unacknowledged bytes, appends a recovered entry, and the log is healthy again', async () => {
    const file = newFile();
    let failing = false;
    const log = await FileAuditLog.open(file, {
      probeIntervalMs: 50,
      wrapIo: (io: AuditIo) => ({
        ...io,
        write: async (d) => {
          if (failing) {
            // A partial write, as a full disk leaves it.
            await io.write(d.subarray(0, 7));
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          }
          await io.write(d);
        },
        truncate: async (len) => {
          if (failing) throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
          return io.truncate(len);
        },
      }),
    });
    await log.append(rec(1));
    failing = true;
    await assert.rejects(log.append(rec(2)), isUnavailable);
    assert.equal(log.healthy, false);
    assert.equal(log.status.reason, 'ENOSPC');
    assert.equal(log.status.terminal, false);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(log.healthy, false, 'recovered while still failing');
    await assert.rejects(log.append(rec(3)), isUnavailable);
    failing = false;
    await pollUntil('recovery', () => log.healthy, { timeoutMs: 2000, intervalMs: 10 });
    await log.append(rec(4));
    await log.close();
    const lines = readLines(file);
    assert.deepEqual(lines.map((l) => l.type), ['request', 'recovered', 'request']);
    assert.equal(lines[1]?.data?.['reason'], 'ENOSPC');
    assert.equal(lines[1]?.data?.['droppedBytes'], 7);
    assert.equal((lines[2] as { requestId?: string }).requestId, 'req-4');
    assert.equal((await verifyAuditFile(file)).ok, true);
  });
});
