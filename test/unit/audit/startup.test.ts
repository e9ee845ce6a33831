/**
 * Opening the chain against the barrier (real SQLite, real SoftHSM): a first start makes the
 * signing key and a chain; a store from before checkpoints starts one over its old file; a removed
 * chain record or a removed file is refused; --new-audit-chain records the choice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FileAuditLog } from '../../../src/audit/file-log.js';
import { CHAIN_KEY, CHECKPOINT_KEY, openAuditChain } from '../../../src/audit/startup.js';
import { SIGNING_KEY_KEY } from '../../../src/audit/signer.js';
import { verifyAuditSet } from '../../../src/audit/verify.js';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../src/errors.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { readLines, rec } from './support.js';
import { tempDir } from '../../helpers/temp.js';

const root = tempDir('keyhold-audit-start-');
let hsm: MemoryHsm;
let n = 0;

before(async () => {
  hsm = await MemoryHsm.open();
});
after(async () => {
  await hsm.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function store(): { dir: string; file: string; barrier: Barrier; storage: SqliteStorage } {
  const dir = path.join(root, `s${++n}`);
  fs.mkdirSync(dir);
  const storage = SqliteStorage.open(path.join(dir, 'kv.db'));
  return { dir, file: path.join(dir, 'audit.log'), barrier: new Barrier(storage, randomBytes(32)), storage };
}

/** Full logical paths of the audit view's records, to tamper with them from outside the view. */
const [CHAIN_PATH, CHECKPOINT_PATH, SIGNING_KEY_PATH] = [CHAIN_KEY, CHECKPOINT_KEY, SIGNING_KEY_KEY].map((key) => MOUNTS.audit.storage + key) as [string, string, string];

const broken = (err: unknown) => isKeyholdError(err, 'ERR_AUDIT_CHAIN_BROKEN');

describe('openAuditChain', () => {
  it('first start: creates the signing key and a chain whose first checkpoint is in the barrier; restarts accept it', async () => {
    const s = store();
    const notes: string[] = [];
    const { log, signer } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: (m) => notes.push(m) });
    assert.ok(notes.some((m) => /created the audit checkpoint signing key/.test(m)));
    await log.append(rec(1));
    await log.close();
    const chain = await s.barrier.getJson<{ id: string; reason: string }>(CHAIN_PATH);
    const cp = await s.barrier.getJson<{ entrySeq: number; chain: string }>(CHECKPOINT_PATH);
    assert.equal(chain?.reason, 'init');
    assert.equal(cp?.chain, chain?.id);
    assert.equal(cp?.entrySeq, 4, 'chain-start, first checkpoint, the request, the final checkpoint');
    const again = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined });
    assert.equal(again.signer.fingerprint, signer.fingerprint);
    await again.log.close();
    assert.equal((await verifyAuditSet(s.file, { publicKey: signer.publicKey, chain: chain?.id })).ok, true);
    await s.storage.close();
  });

  it('a store from before checkpoints: its old file is kept aside and a new chain records the upgrade', async () => {
    const s = store();
    const legacy = await FileAuditLog.open(s.file);
    for (let i = 1; i <= 3; i++) await legacy.append(rec(i));
    const legacyHead = legacy.head;
    await legacy.close();
    const notes: string[] = [];
    const { log } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: (m) => notes.push(m) });
    await log.close();
    const first = readLines(s.file)[0];
    assert.equal(first?.type, 'chain-start');
    assert.equal(first?.data?.['reason'], 'upgrade');
    assert.equal(first?.data?.['previousHeadSeq'], 3);
    assert.equal(first?.data?.['previousHeadHash'], legacyHead.hash);
    assert.equal(fs.readdirSync(s.dir).filter((f) => f.startsWith('audit.log.abandoned-')).length, 1);
    assert.ok(notes.some((m) => /starting a new chain \(upgrade\)/.test(m)));
    await s.storage.close();
  });

  it('refuses a barrier whose chain record or checkpoint was removed from storage, and a missing file', async () => {
    const s = store();
    const { log } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: () => undefined });
    await log.close();
    const chain = await s.barrier.getJson(CHAIN_PATH);
    const cp = await s.barrier.getJson(CHECKPOINT_PATH);
    await s.barrier.delete(CHAIN_PATH);
    await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined }), (err) => broken(err) && /no audit chain record/.test((err as Error).message));
    await s.barrier.putJson(CHAIN_PATH, chain);
    await s.barrier.delete(CHECKPOINT_PATH);
    await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined }), (err) => broken(err) && /latest checkpoint/.test((err as Error).message));
    await s.barrier.putJson(CHECKPOINT_PATH, cp);
    fs.renameSync(s.file, `${s.file}.gone`);
    await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined }), (err) => broken(err) && /truncated/.test((err as Error).message));
    assert.equal(fs.existsSync(s.file), false, 'a refused start creates no file');
    assert.ok(await s.barrier.getJson(SIGNING_KEY_PATH));
    await s.storage.close();
  });

  it('refuses a barrier whose signing-key record was removed from storage, without making a new key or writing anything', async () => {
    const s = store();
    const { log, signer } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: () => undefined });
    await log.close();
    const record = await s.barrier.getJson(SIGNING_KEY_PATH);
    await s.barrier.delete(SIGNING_KEY_PATH);
    const before = fs.readFileSync(s.file);
    const notes: string[] = [];
    await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: (m) => notes.push(m) }), (err) => broken(err) && /signing key record/.test((err as Error).message) && /--new-audit-chain/.test((err as Error).message));
    assert.equal(await s.barrier.getJson(SIGNING_KEY_PATH), null, 'a refused start wrote a new signing-key record');
    assert.deepEqual(notes, [], 'a refused start created a signing key');
    assert.deepEqual(fs.readFileSync(s.file), before);
    // Put back, the same key opens the same chain.
    await s.barrier.putJson(SIGNING_KEY_PATH, record);
    const again = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined });
    assert.equal(again.signer.fingerprint, signer.fingerprint);
    await again.log.close();
    await s.storage.close();
  });

  it('the signing key deleted from the token: refused naming the way out; --new-audit-chain starts a new chain with a new key', async () => {
    const s = store();
    const { log, signer } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: () => undefined });
    await log.append(rec(1));
    await log.close();
    const record = await s.barrier.getJson<{ label: string }>(SIGNING_KEY_PATH);
    const key = hsm.findKey(record?.label as string, 'ec-p256');
    assert.ok(key);
    await hsm.destroyKey(key);
    await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: () => undefined }),
      (err) => isKeyholdError(err, 'ERR_HSM_KEY_MISSING') && /not in token/.test((err as Error).message) && /--new-audit-chain/.test((err as Error).message));
    const notes: string[] = [];
    const { log: fresh, signer: newSigner } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { newChain: true, warn: (m) => notes.push(m) });
    await fresh.close();
    assert.notEqual(newSigner.fingerprint, signer.fingerprint);
    assert.ok(notes.some((m) => m.includes(signer.fingerprint) && /no longer in the token/.test(m)), notes.join('\n'));
    const first = readLines(s.file)[0];
    assert.equal(first?.data?.['reason'], 'new-audit-chain');
    // The old files are judged with the key that signed them (its public half is still in the barrier).
    assert.equal(first?.data?.['previousState'], 'intact');
    assert.equal((await verifyAuditSet(s.file, { publicKey: newSigner.publicKey })).ok, true);
    await s.storage.close();
  });

  it('all its audit records removed from storage: refused, whether the log is kept, emptied or deleted, and nothing is written', async () => {
    const s = store();
    const { log } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: () => undefined });
    await log.append(rec(1));
    await log.close();
    for (const p of [SIGNING_KEY_PATH, CHAIN_PATH, CHECKPOINT_PATH]) await s.barrier.delete(p);
    const notes: string[] = [];
    const refused = async (reason: RegExp) => {
      await assert.rejects(openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { warn: (m) => notes.push(m) }),
        (err) => broken(err) && reason.test((err as Error).message) && /--new-audit-chain/.test((err as Error).message));
      assert.equal(await s.barrier.getJson(SIGNING_KEY_PATH), null, 'a refused start made a signing key');
      assert.equal(fs.readdirSync(s.dir).some((f) => f.includes('abandoned')), false, 'a refused start moved the log aside');
    };
    await refused(/the audit log is chain [0-9a-f]{32}, but the barrier has no audit chain record/);
    fs.writeFileSync(s.file, '');
    await refused(/not an intact log from before checkpoints \(empty\)/);
    fs.rmSync(s.file);
    await refused(/no audit chain record and there is no audit log/);
    assert.deepEqual(notes, []);
    await s.storage.close();
  });

  it('--new-audit-chain: a new chain id, the previous one and what was wrong recorded in the log and the barrier', async () => {
    const s = store();
    const { log } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { initializing: true, warn: () => undefined });
    await log.close();
    const old = await s.barrier.getJson<{ id: string }>(CHAIN_PATH);
    fs.writeFileSync(s.file, '');
    const { log: fresh } = await openAuditChain({ path: s.file }, s.barrier.view(MOUNTS.audit), hsm, { newChain: true, warn: () => undefined });
    await fresh.close();
    const first = readLines(s.file)[0];
    assert.equal(first?.data?.['reason'], 'new-audit-chain');
    assert.equal(first?.data?.['previousChain'], old?.id);
    assert.match(String(first?.data?.['previousState']), /truncated/);
    const now = await s.barrier.getJson<{ id: string; reason: string; previous?: { chain?: string } }>(CHAIN_PATH);
    assert.notEqual(now?.id, old?.id);
    assert.equal(now?.reason, 'new-audit-chain');
    assert.equal(now?.previous?.chain, old?.id);
    await s.storage.close();
  });
});
