/** Size-based rotation: names, each rotated file closed by a checkpoint, the chain going on, and the set verified as one. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { CheckpointSigner } from '../../../src/audit/checkpoint.js';
import { FileAuditLog } from '../../../src/audit/file-log.js';
import { rotatedFiles, rotatedName } from '../../../src/audit/files.js';
import { verifyAuditSet } from '../../../src/audit/verify.js';
import type { Hsm } from '../../../src/hsm/types.js';
import { mountTmpfs } from '../../helpers/tmpfs.js';
import { CHAIN, hsmSigners, readLines, rec } from './support.js';
import { tempDir } from '../../helpers/temp.js';
import { pollUntil } from '../../helpers/wait.js';

const root = tempDir('keyhold-audit-rot-');
const isRoot = process.getuid?.() === 0;
let hsm: Hsm;
let signer: CheckpointSigner;

before(async () => {
  const made = await hsmSigners(['audit-rot']);
  hsm = made.hsm;
  signer = made.signers[0] as CheckpointSigner;
});
after(async () => {
  await hsm.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('rotation', () => {
  it('names rotated files by their first seq, 12 digits, so they sort in chain order', () => {
    assert.equal(rotatedName('/x/audit.log', 1), '/x/audit.log.000000000001');
    assert.equal(rotatedName('/x/audit.log', 123456), '/x/audit.log.000000123456');
    const dir = path.join(root, 'names');
    fs.mkdirSync(dir);
    for (const n of ['audit.log.000000000120', 'audit.log.000000000001', 'audit.log.abandoned-1', 'audit.log.12', 'other.log.000000000001']) fs.writeFileSync(path.join(dir, n), '');
    assert.deepEqual(rotatedFiles(path.join(dir, 'audit.log')).map((f) => [path.basename(f.path), f.firstSeq]), [['audit.log.000000000001', 1], ['audit.log.000000000120', 120]]);
  });

  it('rotates past maxFileBytes under concurrent load; every rotated file ends with a checkpoint; the set verifies; a missing middle file is named', async () => {
    const dir = path.join(root, 'load');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'audit.log');
    const log = await FileAuditLog.open(file, { start: { chain: CHAIN }, maxFileBytes: 4096, checkpoints: { signer, everyEntries: 10_000, intervalMs: 60_000 } });
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(rec(round * 40 + i + 1))));
    await pollUntil('rotations', () => log.status.rotatedFiles >= 3, { timeoutMs: 3000, intervalMs: 10 });
    await log.close();
    const rotated = rotatedFiles(file);
    assert.equal(rotated.length, log.status.rotatedFiles);
    let expectedFirst = 1;
    for (const r of rotated) {
      const lines = readLines(r.path);
      assert.equal(lines[0]?.seq, r.firstSeq, path.basename(r.path));
      assert.equal(r.firstSeq, expectedFirst);
      assert.equal(lines.at(-1)?.type, 'checkpoint', `${path.basename(r.path)} does not end with a checkpoint`);
      expectedFirst = (lines.at(-1)?.seq ?? 0) + 1;
    }
    const active = readLines(file);
    if (active.length > 0) assert.equal(active[0]?.seq, expectedFirst, 'the active file continues the chain');
    const ok = await verifyAuditSet(file, { publicKey: signer.publicKey, chain: CHAIN });
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.equal(ok.ok && ok.entries, 400 + 1 + (ok.ok ? ok.checkpoints ?? 0 : 0));
    assert.equal(ok.ok && ok.files?.length, rotated.length + 1);

    // Reopening reads the whole set and continues it.
    const again = await FileAuditLog.open(file, { check: { publicKey: signer.publicKey, chain: CHAIN }, checkpoints: { signer, everyEntries: 10_000, intervalMs: 60_000 } });
    assert.equal(again.status.rotatedFiles, rotated.length);
    await again.append(rec(401));
    await again.close();

    const middle = rotated[1]?.path as string;
    fs.renameSync(middle, path.join(root, 'moved-away'));
    const missing = await verifyAuditSet(file, { publicKey: signer.publicKey });
    assert.equal(missing.ok, false);
    assert.equal(!missing.ok && missing.file, rotated[2]?.path);
    assert.match(!missing.ok ? missing.reason : '', /missing/);
  });

  it('a full disk when rotation creates the next file (no inode left) is recovered once there is room, without a restart', { skip: isRoot ? false : 'needs root (mount)' }, async () => {
    // Room for the root directory, the filler, the active file and one rotated file: the second
    // rotation renames the active file and then cannot create the next one.
    const fsys = mountTmpfs(1024, 4);
    try {
      const file = path.join(fsys.dir, 'audit.log');
      const filler = path.join(fsys.dir, 'filler');
      fs.writeFileSync(filler, 'x');
      const log = await FileAuditLog.open(file, { start: { chain: CHAIN }, maxFileBytes: 4096, probeIntervalMs: 50, checkpoints: { signer, everyEntries: 10_000, intervalMs: 60_000 } });
      let acknowledged = 0;
      for (let i = 1; i <= 200 && log.healthy; i++) await log.append(rec(i)).then(() => { acknowledged = i; }, () => undefined);
      assert.equal(log.healthy, false, 'the disk never filled');
      assert.equal(log.status.reason, 'ROTATION_FAILED');
      assert.equal(log.status.terminal, false);
      assert.equal(fs.existsSync(file), false, 'the active file was renamed and no next one could be made');
      fs.unlinkSync(filler);
      await pollUntil('recovery', () => log.healthy, { timeoutMs: 3000, intervalMs: 10 });
      await log.append(rec(1000));
      await log.close();
      const next = readLines(file);
      assert.equal(next[0]?.type, 'recovered');
      assert.equal(next[0]?.data?.['reason'], 'ROTATION_FAILED');
      const set = await verifyAuditSet(file, { publicKey: signer.publicKey, chain: CHAIN });
      assert.equal(set.ok, true, JSON.stringify(set));
      assert.ok(acknowledged > 0);
    } finally {
      fsys.unmount();
    }
  });
});
