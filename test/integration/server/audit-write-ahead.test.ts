/**
 * "A write can commit with no audit record" (issue 9). A real `keyhold dev` whose audit log lives
 * on a small tmpfs (KEYHOLD_AUDIT_PATH) that fills up under a write load, so appends fail with
 * ENOSPC part-way. Whatever the server stored must have its write-ahead `request` record, and
 * every acknowledged write must read back after a restart with the space freed. Recovery is by
 * restart only. Mounting needs root: the suite is skipped otherwise.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { sleep } from '../../helpers/processes.js';
import { auditRecords, call, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { mountTmpfs } from '../../helpers/tmpfs.js';
import { pollUntil } from '../../helpers/wait.js';
import { assertError } from '../api/api-helpers.js';

const isRoot = process.getuid?.() === 0;

/** Fills the file system holding `dir` with one file, to the last byte it takes; returns the file. */
function fill(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  try {
    for (let chunk = 64 * 1024; chunk >= 1; chunk = Math.floor(chunk / 4)) {
      const buf = Buffer.alloc(chunk, 0x61);
      for (;;) {
        try {
          fs.writeSync(fd, buf);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

describe('no state change without its audit record, with the audit disk filling up', { skip: isRoot ? false : 'needs root to mount a tmpfs', timeout: 240_000 }, () => {
  const cleanups: Array<() => void | Promise<unknown>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) {
      try { await cleanup(); } catch { /* best effort */ }
    }
  });

  /** A dev server whose audit log is on a tmpfs of `kib` KiB. */
  const setUp = async (kib: number) => {
    const tmpfs = mountTmpfs(kib);
    const dataDir = tempDir('keyhold-write-ahead-');
    const env = { KEYHOLD_AUDIT_PATH: path.join(tmpfs.dir, 'audit.log') };
    const holder: { server: DevServer } = { server: await startDev(dataDir, env) };
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }), () => tmpfs.unmount(), () => holder.server.stop('SIGKILL'));
    return { tmpfs, dataDir, env, auditFile: env.KEYHOLD_AUDIT_PATH, holder };
  };

  it('with the audit disk full, a write is stored only if its request record is in the log; the writes that follow are refused (503 ERR_AUDIT_UNAVAILABLE) and not stored', async () => {
    const { tmpfs, dataDir, env, auditFile, holder } = await setUp(512);
    const root = holder.server.rootToken;
    const put = (name: string, v: number) => call(holder.server.address, 'PUT', `/v1/secrets/full/${name}`, root, { data: { v } });
    assert.equal((await put('before', 0)).status, 200);
    const filler = fill(tmpfs.dir);
    // The log's last page still takes a few records; then appends fail. The first refused write
    // may have failed at its request record (not stored) or at its response record (stored, and
    // named by its request record: the client is told 503 and may retry the idempotent PUT).
    const acked = new Map<string, number>();
    const refused: string[] = [];
    for (let i = 0; i < 500 && refused.length === 0; i++) {
      const r = await put(`s${i}`, i);
      if (r.status === 200) acked.set(`s${i}`, i);
      else {
        assertError({ status: r.status, headers: {}, text: r.text, body: r.body }, 503, 'ERR_AUDIT_UNAVAILABLE', `write ${i}`);
        refused.push(`s${i}`);
      }
    }
    assert.equal(refused.length, 1, 'no write was refused with the audit disk full');
    // Writes after the failure are refused before their handler runs (the log is failed). The
    // recovery probe may bring it back for a moment (truncating frees part of a page); a write
    // that then succeeds must, like every other, be named in the log.
    for (let i = 0; i < 5; i++) {
      const r = await put(`after${i}`, -1 - i);
      if (r.status === 200) acked.set(`after${i}`, -1 - i);
      else {
        assert.equal(r.body?.error?.code, 'ERR_AUDIT_UNAVAILABLE', r.text);
        refused.push(`after${i}`);
      }
    }

    await holder.server.stop('SIGTERM');
    fs.rmSync(filler);
    holder.server = await startDev(dataDir, env);
    const read = (name: string) => call(holder.server.address, 'GET', `/v1/secrets/full/${name}`, root);
    const requested = new Set(auditRecords(dataDir, auditFile)
      .filter((e) => e.type === 'request' && e.operation === 'secrets.write')
      .map((e) => e.path));
    let refusedAndAbsent = 0;
    for (const name of refused) {
      const r = await read(name);
      if (r.status === 404) {
        assert.equal(r.body?.error?.code, 'ERR_SECRET_NOT_FOUND');
        refusedAndAbsent++;
      } else {
        assert.equal(r.status, 200, r.text);
        assert.ok(requested.has(`/v1/secrets/full/${name}`), `the refused write ${name} was stored without a request record`);
      }
    }
    assert.ok(refusedAndAbsent >= 1, `every refused write was stored anyway: ${refused.join(', ')}`);
    for (const [name, v] of acked) {
      assert.deepEqual((await read(name)).body?.data, { v }, `acknowledged write ${name} lost`);
      assert.ok(requested.has(`/v1/secrets/full/${name}`), `acknowledged write ${name} has no request record`);
    }
    assert.deepEqual((await read('before')).body?.data, { v: 0 });
  });

  it('kill -9 during a write load whose audit disk fills part-way: every stored change has its request record, no acknowledged write is lost', async () => {
    const { tmpfs, dataDir, env, auditFile, holder } = await setUp(1024);
    const root = holder.server.rootToken;
    const address = holder.server.address;
    const values = new Map<string, string>();
    const acked = new Set<string>();
    let refused = 0;
    let next = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const name = `w${next++}`;
        const value = `${name}-${randomBytes(8).toString('hex')}`;
        values.set(name, value);
        try {
          const r = await call(address, 'PUT', `/v1/secrets/load/${name}`, root, { data: { value } });
          if (r.status === 200) acked.add(name);
          else {
            assert.equal(r.body?.error?.code, 'ERR_AUDIT_UNAVAILABLE', `${name}: ${r.status} ${r.text}`);
            refused++;
          }
        } catch {
          return; // the server was killed
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    await pollUntil('100 acknowledged writes', () => acked.size >= 100, { timeoutMs: 60_000, intervalMs: 10 });
    const filler = fill(tmpfs.dir);
    await pollUntil('refused writes', () => refused >= 20, { timeoutMs: 60_000, intervalMs: 10 });
    await sleep(200);
    await holder.server.stop('SIGKILL');
    stop = true;
    await Promise.all(workers);

    fs.rmSync(filler);
    holder.server = await startDev(dataDir, env);
    const lost: string[] = [];
    for (const name of acked) {
      const r = await call(holder.server.address, 'GET', `/v1/secrets/load/${name}`, root);
      if (r.status !== 200 || r.body?.data?.value !== values.get(name)) lost.push(`${name}: ${r.status} ${r.text}`);
    }
    assert.deepEqual(lost, [], 'acknowledged writes lost');
    const listed = await call(holder.server.address, 'GET', '/v1/secrets/load?list=true', root);
    assert.equal(listed.status, 200, listed.text);
    const stored = listed.body.keys as string[];
    assert.ok(stored.length >= acked.size, `${stored.length} stored, ${acked.size} acknowledged`);
    const requested = new Set(auditRecords(dataDir, auditFile)
      .filter((e) => e.type === 'request' && e.operation === 'secrets.write')
      .map((e) => e.path));
    const unrecorded = stored.filter((name) => !requested.has(`/v1/secrets/load/${name}`));
    assert.deepEqual(unrecorded, [], 'secrets stored without a request record');
    console.log(`# ${acked.size} acknowledged, ${refused} refused, ${stored.length} stored, all with their request record`);
  });
});
