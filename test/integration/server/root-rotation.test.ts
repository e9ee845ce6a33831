/**
 * Root-key rotation on a real `keyhold server` over SQLite and SoftHSM (issue 11, "Rekey under
 * write load, with a kill -9 in the middle"): `keyhold seal rotate-root` while clients write; the
 * server is SIGKILLed in the middle of the background rewrite and restarted; the rewrite resumes
 * from its saved cursor; at the end every acknowledged write reads back, no record in the SQLite
 * file is under the old generation, and the keyring no longer holds the old key. And a SIGKILL
 * right after the rotation's atomic write (a test-only fault) leaves a store that unseals.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { Barrier } from '../../../src/barrier/barrier.js';
import { openBarrier, readKeyring } from '../../../src/barrier/keyring.js';
import { unseal } from '../../../src/barrier/seal.js';
import type { HsmConfig } from '../../../src/hsm/config.js';
import { Pkcs11Hsm } from '../../../src/hsm/pkcs11-hsm.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { inParallel } from '../../helpers/pool.js';
import { sleep } from '../../helpers/processes.js';
import { call, CLI, devServerConfig, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { runCliTimed, storedGenerations } from './support.js';

interface Acked { path: string; i: number }

/** A `keyhold dev` data dir, initialised, and a server config over it with the rotation settings of this test. */
async function prepared(prefix: string, rootRotation: Record<string, number>): Promise<{ dataDir: string; configFile: string; env: NodeJS.ProcessEnv; rootToken: string }> {
  const dataDir = tempDir(prefix);
  const dev = await startDev(dataDir);
  const rootToken = dev.rootToken;
  await dev.stop('SIGTERM');
  const configFile = path.join(dataDir, 'server.yaml');
  fs.writeFileSync(configFile, stringifyYaml(devServerConfig(dataDir, { rootRotation })));
  return { dataDir, configFile, env: { SOFTHSM2_CONF: path.join(dataDir, 'softhsm2.conf') }, rootToken };
}

/** `keyhold seal <sub>` against `server`, as an operator would run it. */
function sealCli(server: DevServer, token: string, sub: string): { status: number | null; body: any; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'seal', sub], { env: { ...process.env, KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: token }, encoding: 'utf8' });
  let body: any;
  try { body = JSON.parse(r.stdout); } catch { body = undefined; }
  return { status: r.status, body, stderr: r.stderr };
}

async function rotationStatus(server: DevServer, token: string): Promise<any> {
  const r = await call(server.address, 'GET', '/v1/sys/seal/rotation', token);
  assert.equal(r.status, 200, r.text);
  return r.body;
}

/** Opens the stopped store in this process with the dev token: the keyring, and a barrier holding only the current key. */
async function inspectStore(dataDir: string): Promise<{ generation: number; keyringGenerations: number[]; unreadable: string[]; records: number }> {
  process.env.SOFTHSM2_CONF = path.join(dataDir, 'softhsm2.conf');
  const hsm = await Pkcs11Hsm.open(devServerConfig(dataDir).hsm as HsmConfig);
  const storage = SqliteStorage.open(path.join(dataDir, 'keyhold.db'));
  try {
    const unsealed = await unseal(storage, hsm);
    const { barrier } = await openBarrier(storage, { rootKey: Buffer.from(unsealed.rootKey), generation: unsealed.generation });
    const keyring = (await readKeyring(barrier)).value;
    // Only the current key: every record must open without any older one.
    const currentOnly = new Barrier(storage, unsealed.rootKey, { generation: unsealed.generation });
    const paths = await currentOnly.list('');
    const unreadable: string[] = [];
    for (const p of paths) await currentOnly.read(p).catch(() => unreadable.push(p));
    return { generation: unsealed.generation, keyringGenerations: (keyring?.keys ?? []).map((k) => k.generation), unreadable, records: paths.length };
  } finally {
    await storage.close();
    await hsm.close();
  }
}

describe('root-key rotation under write load, with kill -9 in the middle of the rewrite (SQLite)', { timeout: 240_000 }, () => {
  let setup: Awaited<ReturnType<typeof prepared>>;
  let server: DevServer | undefined;
  const acked: Acked[] = [];
  /** Every write sent, acknowledged or not: one in flight at the kill may have landed. */
  const attempted = new Set<string>();
  const policies: string[] = [];
  let keyCiphertext = '';
  let killedAt: any;
  let resumedAt: any;
  let final: any;
  let rotated: any;
  let backupFile = '';

  before(async () => {
    // Small batches with a pause: the rewrite of ~700 records takes several seconds, so the kill lands in its middle.
    setup = await prepared('keyhold-rotate-', { batchSize: 10, pauseMs: 60 });
    server = await startServer(setup.configFile, setup.env, setup.dataDir);
  });
  after(async () => {
    await server?.stop('SIGKILL');
    fs.rmSync(setup.dataDir, { recursive: true, force: true });
  });

  const write = async (s: DevServer, p: string, i: number): Promise<void> => {
    const data = { v: `${p}#${i}` };
    attempted.add(data.v);
    const r = await call(s.address, 'PUT', `/v1/secrets/${p}`, setup.rootToken, { data }).catch(() => undefined);
    if (r?.status === 200) acked.push({ path: p, i });
  };

  /** Writers that keep going until `stop()`; what was acknowledged is in `acked`. */
  const load = (s: DevServer, tag: string) => {
    let running = true;
    const done = Promise.all([0, 1, 2, 3].map(async (w) => {
      for (let i = 0; running; i++) await write(s, `load/${tag}-${w}-${i % 40}`, i);
    }));
    return { stop: async () => { running = false; await done; } };
  };

  it('rotates with `keyhold seal rotate-root` while clients write, and the kill -9 lands in the middle of the rewrite', async () => {
    const s = server as DevServer;
    await inParallel(Array.from({ length: 300 }, (_, i) => i), 16, (i) => write(s, `base/s-${i}`, 0));
    for (let i = 0; i < 5; i++) {
      const name = `rot-p${i}`;
      const r = await call(s.address, 'PUT', `/v1/policies/${name}`, setup.rootToken, { rules: [{ path: `secrets/base/s-${i}`, capabilities: ['read'] }] });
      assert.equal(r.status, 200, r.text);
      policies.push(name);
    }
    assert.equal((await call(s.address, 'POST', '/v1/keys', setup.rootToken, { name: 'rot-key', type: 'aes256-gcm', protection: 'wrapped' })).status, 200);
    const enc = await call(s.address, 'POST', '/v1/keys/rot-key/encrypt', setup.rootToken, { plaintext: Buffer.from('rotate me').toString('base64') });
    keyCiphertext = enc.body.ciphertext;
    const before1 = storedGenerations(path.join(setup.dataDir, 'keyhold.db'));
    assert.ok([...before1.values()].every((g) => g === 1), 'everything starts under generation 1');
    assert.ok(before1.size > 600, `enough records to rewrite (${before1.size})`);

    const writers = load(s, 'a');
    await sleep(200);
    const cli = sealCli(s, setup.rootToken, 'rotate-root');
    assert.equal(cli.status, 0, cli.stderr);
    rotated = cli.body;
    assert.equal(rotated.generation, 2);
    assert.equal(rotated.rewriting, true);
    // A second rotation while this one rewrites is refused, with a code.
    const again = await call(s.address, 'POST', '/v1/sys/seal/rotate-root', setup.rootToken);
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.error.code, 'ERR_ROTATION_IN_PROGRESS');
    // A backup taken now holds records of both generations, and the keyring.
    backupFile = path.join(setup.dataDir, 'mid-rotation.backup');
    const backup = await runCliTimed(['backup', '--config', setup.configFile, '--out', backupFile], setup.env, 60_000);
    assert.equal(backup.code, 0, backup.stderr);
    // New writes are under generation 2 at once.
    await write(s, 'after/rotation', 1);
    const afterRotation = [...storedGenerations(path.join(setup.dataDir, 'keyhold.db'))].filter(([k]) => k.includes('after/rotation'));
    assert.ok(afterRotation.length > 0 && afterRotation.every(([, g]) => g === 2), `written under generation 2: ${JSON.stringify(afterRotation)}`);

    killedAt = await pollUntil('the rewrite in the middle of its first pass', async () => {
      const st = await rotationStatus(s, setup.rootToken);
      return st.pass === 1 && st.scanned >= 200 ? st : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    const health = await call(s.address, 'GET', '/v1/sys/health');
    assert.deepEqual(health.body.root_key, { generation: 2, rewriting: true });
    const metrics = (await fetch(`${s.address}/metrics`).then((r) => r.text()));
    assert.match(metrics, /^keyhold_root_key_generation 2$/m);
    assert.match(metrics, /^keyhold_root_rotation_in_progress 1$/m);
    assert.match(metrics, /^keyhold_root_rotation_records_rewritten_total [1-9]\d*$/m);
    await s.stop('SIGKILL');
    await writers.stop();
    const mixed = [...storedGenerations(path.join(setup.dataDir, 'keyhold.db')).values()];
    assert.ok(mixed.includes(1) && mixed.includes(2), 'killed with records under both generations');
  });

  it('resumes the rewrite from its saved cursor after the restart and finishes it', async () => {
    server = await startServer(setup.configFile, setup.env, setup.dataDir);
    const s = server;
    resumedAt = await rotationStatus(s, setup.rootToken);
    assert.equal(resumedAt.generation, 2);
    // The saved counters survived the kill (they are saved with the cursor, after each batch).
    assert.ok(resumedAt.scanned >= killedAt.scanned - 10, `resumed at ${resumedAt.scanned}, killed at ${killedAt.scanned}`);
    const writers = load(s, 'b');
    final = await pollUntil('the rewrite finished', async () => {
      const st = await rotationStatus(s, setup.rootToken);
      return st.rewriting === false ? st : undefined;
    }, { timeoutMs: 120_000, intervalMs: 100 });
    await writers.stop();
    assert.ok(final.finished_at, 'finished_at is set');
    assert.ok(final.pass >= 2, 'a final pass ran after the first');
    // Resumed, not restarted: the first pass did not scan again what it had done before the kill.
    const records = storedGenerations(path.join(setup.dataDir, 'keyhold.db')).size;
    assert.ok(final.scanned < 2 * records + killedAt.scanned, `scanned ${final.scanned} for ${records} records`);
    const status = spawnSync(process.execPath, [CLI, 'status'], { env: { ...process.env, KEYHOLD_ADDR: s.address, KEYHOLD_TOKEN: setup.rootToken }, encoding: 'utf8' });
    const shown = JSON.parse(status.stdout);
    assert.equal(shown.root_key.generation, 2);
    assert.equal(shown.root_rotation.rewriting, false);
    assert.equal(sealCli(s, setup.rootToken, 'rotation-status').body.generation, 2);
  });

  it('reads back every acknowledged write, key and policy', async () => {
    const s = server as DevServer;
    const latest = new Map<string, number>();
    for (const a of acked) latest.set(a.path, Math.max(a.i, latest.get(a.path) ?? -1));
    const problems: string[] = [];
    await inParallel([...latest], 16, async ([p, i]) => {
      const r = await call(s.address, 'GET', `/v1/secrets/${p}`, setup.rootToken);
      const v = String(r.body?.data?.v ?? '');
      // The latest acknowledged write, or a later one that was in flight at the kill and landed.
      const readI = Number(v.slice(v.lastIndexOf('#') + 1));
      if (r.status !== 200 || !attempted.has(v) || !v.startsWith(`${p}#`) || readI < i) problems.push(`${p}: acknowledged #${i}, read ${r.status} ${r.text}`);
    });
    assert.deepEqual(problems, []);
    for (const name of policies) assert.equal((await call(s.address, 'GET', `/v1/policies/${name}`, setup.rootToken)).status, 200);
    const dec = await call(s.address, 'POST', '/v1/keys/rot-key/decrypt', setup.rootToken, { ciphertext: keyCiphertext });
    assert.equal(Buffer.from(dec.body.plaintext, 'base64').toString(), 'rotate me');
    assert.ok(acked.filter((a) => a.path.startsWith('load/')).length > 50, 'writes were made during the rotation');
  });

  it('leaves no record under the old generation, and no old key in the keyring', async () => {
    await server?.stop('SIGTERM');
    server = undefined;
    const generations = storedGenerations(path.join(setup.dataDir, 'keyhold.db'));
    const old = [...generations].filter(([, g]) => g !== 2).map(([k]) => k);
    assert.deepEqual(old, [], 'records not under generation 2');
    const store = await inspectStore(setup.dataDir);
    assert.equal(store.generation, 2);
    assert.deepEqual(store.keyringGenerations, [], 'the keyring no longer holds generation 1');
    assert.deepEqual(store.unreadable, [], 'records that need a key other than the current one');
    assert.equal(store.records, generations.size);
  });

  it('restores the backup taken in the middle of the rewrite, which then finishes on the restored store', async () => {
    const dir = tempDir('keyhold-rotate-restore-');
    try {
      const base = devServerConfig(setup.dataDir, { rootRotation: { batchSize: 100, pauseMs: 0 } });
      const config = path.join(dir, 'server.yaml');
      fs.writeFileSync(config, stringifyYaml({ ...base, storage: { sqlite: { path: path.join(dir, 'keyhold.db') } }, audit: { path: path.join(dir, 'audit.log') } }));
      const restore = await runCliTimed(['restore', '--in', backupFile, '--config', config], setup.env, 60_000);
      assert.equal(restore.code, 0, restore.stderr);
      const restoredGenerations = new Set(storedGenerations(path.join(dir, 'keyhold.db')).values());
      assert.ok(restoredGenerations.has(1) && restoredGenerations.has(2), `the backup was taken mid-rewrite: records of both generations (${[...restoredGenerations]})`);
      const restored = await startServer(config, setup.env, setup.dataDir, ['--new-audit-chain']);
      try {
        assert.equal((await call(restored.address, 'GET', '/v1/secrets/base/s-7', setup.rootToken)).body?.data?.v, 'base/s-7#0');
        await pollUntil('the restored store\'s rewrite finished', async () => (await rotationStatus(restored, setup.rootToken)).rewriting === false, { timeoutMs: 60_000 });
      } finally {
        await restored.stop('SIGTERM');
      }
      assert.deepEqual([...new Set(storedGenerations(path.join(dir, 'keyhold.db')).values())], [2]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('kill -9 right after the rotation\'s atomic write (SQLite)', { timeout: 120_000 }, () => {
  let setup: Awaited<ReturnType<typeof prepared>>;
  let server: DevServer | undefined;
  before(async () => {
    setup = await prepared('keyhold-rotate-crash-', { batchSize: 50, pauseMs: 0 });
  });
  after(async () => {
    await server?.stop('SIGKILL');
    fs.rmSync(setup.dataDir, { recursive: true, force: true });
  });

  it('still unseals, reads everything back and finishes the rewrite', async () => {
    server = await startServer(setup.configFile, { ...setup.env, KEYHOLD_TEST_FAULT: 'crash-after-root-rotation-write' }, setup.dataDir);
    const s = server;
    for (let i = 0; i < 40; i++) assert.equal((await call(s.address, 'PUT', `/v1/secrets/c/s-${i}`, setup.rootToken, { data: { i: String(i) } })).status, 200);
    // The server kills itself between the commit and anything after it: the request gets no answer.
    await assert.rejects(call(s.address, 'POST', '/v1/sys/seal/rotate-root', setup.rootToken));
    const signal = s.process.exitCode !== null || s.process.signalCode !== null ? s.process.signalCode : await new Promise((r) => s.process.once('exit', (_c, sig) => r(sig)));
    assert.equal(signal, 'SIGKILL');
    const generations = [...storedGenerations(path.join(setup.dataDir, 'keyhold.db')).values()];
    assert.ok(generations.includes(1) && generations.includes(2), 'the rotation was committed; no record rewritten yet but its own');

    server = await startServer(setup.configFile, setup.env, setup.dataDir);
    const health = await call(server.address, 'GET', '/v1/sys/health');
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body.root_key.generation, 2);
    for (let i = 0; i < 40; i++) {
      const r = await call(server.address, 'GET', `/v1/secrets/c/s-${i}`, setup.rootToken);
      assert.equal(r.body?.data?.i, String(i), r.text);
    }
    const addr = server;
    await pollUntil('the rewrite finished', async () => (await rotationStatus(addr, setup.rootToken)).rewriting === false, { timeoutMs: 60_000 });
    assert.deepEqual([...new Set(storedGenerations(path.join(setup.dataDir, 'keyhold.db')).values())], [2]);
  });
});
