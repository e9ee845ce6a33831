/**
 * Checkpoints signed by a real SoftHSM key: written into the chain every N entries, every T
 * seconds and at close; checked with only the public key; and every way of forging or moving one
 * is named by the verifier.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson } from '../../../src/audit/canonical.js';
import type { CheckpointSigner, StoredCheckpoint } from '../../../src/audit/checkpoint.js';
import { entryHash, sealSystemLine, type SystemEntry } from '../../../src/audit/entry.js';
import { FileAuditLog, type FileAuditLogOptions } from '../../../src/audit/file-log.js';
import { scanAuditFiles, type AuditVerifyResult } from '../../../src/audit/verify.js';
import type { Hsm } from '../../../src/hsm/types.js';
import { CHAIN, hsmSigners, OTHER_CHAIN, readLines, rec, type Line } from './support.js';
import { tempDir } from '../../helpers/temp.js';
import { pollUntil } from '../../helpers/wait.js';

const root = tempDir('keyhold-audit-cp-');
let hsm: Hsm;
let signer: CheckpointSigner;
let otherSigner: CheckpointSigner;
let n = 0;
const newFile = () => path.join(root, `audit-${++n}.log`);

before(async () => {
  const made = await hsmSigners(['audit-a', 'audit-b']);
  hsm = made.hsm;
  [signer, otherSigner] = made.signers as [CheckpointSigner, CheckpointSigner];
});
after(async () => {
  await hsm.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function options(extra: Partial<FileAuditLogOptions> = {}, onCheckpoint?: (c: StoredCheckpoint) => void): FileAuditLogOptions {
  return {
    start: { chain: CHAIN, reason: 'init' },
    checkpoints: { signer, everyEntries: 10, intervalMs: 60_000, onCheckpoint: async (c) => onCheckpoint?.(c) },
    ...extra,
  };
}

/** A log of `count` requests with checkpoints every 10 entries and a final one at close. */
async function writeSigned(count: number): Promise<{ file: string; stored: StoredCheckpoint[] }> {
  const file = newFile();
  const stored: StoredCheckpoint[] = [];
  const log = await FileAuditLog.open(file, options({}, (c) => stored.push(c)));
  for (let i = 1; i <= count; i++) await log.append(rec(i));
  await log.close();
  return { file, stored };
}

const verify = async (file: string, publicKey = signer.publicKey, anchor?: StoredCheckpoint): Promise<AuditVerifyResult> =>
  (await scanAuditFiles([{ path: file }], { publicKey, ...(anchor ? { anchor } : {}) })).result;

function writeLines(lines: Line[]): string {
  const file = newFile();
  fs.writeFileSync(file, lines.map((l) => `${canonicalJson(l)}\n`).join(''));
  return file;
}

/** Re-seals entries from index `from` on so that seq/prev/hash are consistent again (what an attacker without the HSM can do). */
function reseal(lines: Line[], from: number): Line[] {
  const out = lines.map((l) => ({ ...l }));
  for (let i = from; i < out.length; i++) {
    const { hash: _h, ...entry } = out[i] as Line;
    if (i > 0) entry.prev = (out[i - 1] as Line).hash;
    out[i] = { ...entry, hash: entryHash(entry as SystemEntry) } as Line;
  }
  return out;
}

function assertBad(result: AuditVerifyResult, badSeq: number, reason: RegExp): void {
  assert.equal(result.ok, false, JSON.stringify(result));
  if (result.ok) return;
  assert.equal(result.badSeq, badSeq, result.reason);
  assert.match(result.reason, reason);
}

describe('checkpoints', () => {
  it('are written every N entries and at close, each signing an earlier head, and verify with the public key only', async () => {
    const { file, stored } = await writeSigned(35);
    const lines = readLines(file);
    assert.equal(lines[0]?.type, 'chain-start');
    const cps = lines.filter((l) => l.type === 'checkpoint');
    assert.ok(cps.length >= 4, `${cps.length} checkpoints`);
    assert.equal(lines.at(-1)?.type, 'checkpoint', 'close writes a final checkpoint');
    for (const c of cps) {
      assert.ok((c.data?.['headSeq'] as number) < c.seq);
      assert.equal(lines[(c.data?.['headSeq'] as number) - 1]?.hash, c.data?.['headHash']);
    }
    // onCheckpoint gets each one after it is durable, with its own seq and hash.
    assert.deepEqual(stored.map((s) => s.entrySeq), cps.map((c) => c.seq));
    assert.equal(stored.at(-1)?.entryHash, lines.at(-1)?.hash);
    const result = await verify(file, signer.publicKey, stored.at(-1));
    assert.equal(result.ok, true, JSON.stringify(result));
    if (result.ok) {
      assert.equal(result.checkpoints, cps.length);
      assert.equal(result.unsignedEntries, 1); // the final checkpoint entry itself
    }
  });

  it('signing does not hold up appends: the checkpoint lands after them and signs the head it was asked for', async () => {
    const file = newFile();
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let signing = false;
    const slow: CheckpointSigner = { ...signer, sign: async (d) => { signing = true; await gate; return signer.sign(d); } };
    const log = await FileAuditLog.open(file, { start: { chain: CHAIN }, checkpoints: { signer: slow, everyEntries: 1_000, intervalMs: 60_000 } });
    await log.append(rec(1));
    const pending = log.checkpoint();
    await pollUntil('signing', () => signing, { timeoutMs: 3000, intervalMs: 10 });
    for (let i = 2; i <= 6; i++) await log.append(rec(i)); // each resolves while the HSM call waits
    release();
    const cp = await pending;
    assert.equal(cp?.headSeq, 2);
    assert.equal(cp?.entrySeq, 8);
    await log.close();
    assert.equal((await verify(file)).ok, true);
  });

  it('are written every T seconds while there are new entries, and not when there are none', async () => {
    const file = newFile();
    const log = await FileAuditLog.open(file, { start: { chain: CHAIN }, checkpoints: { signer, everyEntries: 1_000, intervalMs: 100 } });
    await log.append(rec(1));
    await pollUntil('a timed checkpoint', () => log.lastCheckpoint !== undefined, { timeoutMs: 3000, intervalMs: 10 });
    const first = log.lastCheckpoint?.entrySeq;
    await new Promise((r) => setTimeout(r, 350));
    assert.equal(log.lastCheckpoint?.entrySeq, first, 'a checkpoint with nothing new to sign');
    await log.close();
  });

  it('names a rewritten and re-sealed entry: the next checkpoint no longer matches', async () => {
    const { file } = await writeSigned(25);
    const lines = readLines(file);
    lines[2] = { ...(lines[2] as Line), path: 'secrets/app/forged' } as Line;
    const forged = writeLines(reseal(lines, 2));
    const firstCp = lines.find((l) => l.type === 'checkpoint' && (l.data?.['headSeq'] as number) >= 3) as Line;
    assertBad(await verify(forged), firstCp.seq, /rewritten/);
  });

  it('a rewrite caught only at the anchor (the latest checkpoint, kept outside) names the range it can be in', async () => {
    const { file, stored } = await writeSigned(25);
    const lines = readLines(file);
    const latest = stored.at(-1) as StoredCheckpoint;
    const target = latest.headSeq - 1; // after the head of the checkpoint before, so only the anchor can tell
    const previousHead = stored.at(-2)?.headSeq as number;
    assert.ok(target > previousHead);
    lines[target - 1] = { ...(lines[target - 1] as Line), path: 'secrets/app/forged' } as Line;
    const forged = writeLines(reseal(lines, target - 1));
    const r = await verify(forged, signer.publicKey, latest);
    assertBad(r, latest.headSeq, /rewritten between seq (\d+) and (\d+)/);
    const [, from, to] = /between seq (\d+) and (\d+)/.exec(r.ok ? '' : r.reason) as RegExpExecArray;
    assert.ok(Number(from) <= target && target <= Number(to), `${target} not in ${from}..${to}`);
  });

  it('refuses a forged signature, an edited head, another key and another chain', async () => {
    const { file } = await writeSigned(12);
    const lines = readLines(file);
    const cpIndex = lines.findIndex((l) => l.type === 'checkpoint' && l.seq > 2);
    const cp = lines[cpIndex] as Line;
    const edit = (data: Record<string, string | number>) => {
      const copy = [...lines];
      copy[cpIndex] = { ...cp, data: { ...cp.data, ...data } } as Line;
      return writeLines(reseal(copy, cpIndex));
    };
    const sig = Buffer.from(cp.data?.['sig'] as string, 'base64');
    sig[10] = (sig[10] as number) ^ 1;
    assertBad(await verify(edit({ sig: sig.toString('base64') })), cp.seq, /signature is invalid/);
    assertBad(await verify(edit({ headHash: lines[0]?.hash as string })), cp.seq, /signature is invalid/);
    assertBad(await verify(file, otherSigner.publicKey), (lines.find((l) => l.type === 'checkpoint') as Line).seq, /another key/);
    assertBad(await verify(edit({ chain: OTHER_CHAIN })), cp.seq, /chain/);
  });

  it('requires a checkpoint over the chain, and the log to reach the latest known one', async () => {
    const { file, stored } = await writeSigned(12);
    const lines = readLines(file);
    const noCheckpoints = writeLines(reseal(lines.filter((l) => l.type !== 'checkpoint').map((l, i) => ({ ...l, seq: i + 1 }) as Line), 0));
    assertBad(await verify(noCheckpoints), readLines(noCheckpoints).length + 1, /no valid checkpoint/);
    const latest = stored.at(-1) as StoredCheckpoint;
    const cut = writeLines(lines.slice(0, latest.entrySeq - 1));
    const r = await verify(cut, signer.publicKey, latest);
    assertBad(r, latest.entrySeq - 1 + 1, /truncated/);
    assert.equal(!r.ok && r.truncated, true);
    const empty = newFile();
    fs.writeFileSync(empty, '');
    assertBad(await verify(empty, signer.publicKey, latest), 1, /truncated/);
    assertBad(await verify(file, signer.publicKey, { ...latest, chain: OTHER_CHAIN }), 1, /another log/);
  });

  it('refuses an older checkpoint of the same chain replayed later (at the end, or duplicated in the middle)', async () => {
    const { file, stored } = await writeSigned(25);
    const lines = readLines(file);
    const last = lines.at(-1) as Line;
    assert.equal(last.type, 'checkpoint');
    // Appended after the last entry: the signature is genuine, only its place is not.
    const appended = writeLines(reseal([...lines, { ...last, seq: last.seq + 1 } as Line], lines.length));
    assertBad(await verify(appended, signer.publicKey, stored.at(-1)), last.seq + 1, /replayed/);
    const cpIndex = lines.findIndex((l) => l.type === 'checkpoint' && l.seq > 2);
    const dup = [...lines.slice(0, cpIndex + 1), lines[cpIndex] as Line, ...lines.slice(cpIndex + 1)].map((l, i) => ({ ...l, seq: i + 1 }) as Line);
    assertBad(await verify(writeLines(reseal(dup, cpIndex + 1))), (lines[cpIndex] as Line).seq + 1, /replayed/);
  });

  it('a system entry round-trips through the canonical form', () => {
    const entry: SystemEntry = { seq: 1, time: '2026-01-01T00:00:00.000Z', prev: '0'.repeat(64), type: 'repair', data: { droppedBytes: 12, file: 'a"b' } };
    const { hash, line } = sealSystemLine(entry);
    assert.equal(line, canonicalJson({ ...entry, hash }));
    assert.equal(entryHash({ ...entry, hash }), hash);
  });
});
