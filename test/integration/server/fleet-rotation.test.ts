/**
 * Where the issue-11 parts meet, root-key rotation side (real server processes, real SoftHSM,
 * real p11-kit members): a rotation on an RSA/EC-only token (RSA-OAEP seal) with writes during the
 * rewrite, then a backup of that store restored on the same token; a rotation in data-object mode
 * (SoftHSM directly and through the hop), which must replace the token's root-key data object; a
 * rotation while one member of a three-member cluster is down.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { startP11KitFleet, type P11KitFleet } from '../../helpers/p11kit.js';
import { pkcs11Tool } from '../../helpers/pkcs11-tool.js';
import { makeSoftHsmToken, readPin, type SoftHsmTestToken } from '../../helpers/softhsm.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { ok, PLAINTEXT, readBack, runCliTimed, storedGenerations, storedSealRecord, writeSome as writeSomeTo, type Written } from './support.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Store { dir: string; db: string; configFile: string; env: NodeJS.ProcessEnv }

/** A store in a new dir over `hsm`, with a rewrite slow enough to write in its middle. */
function newStore(hsm: object, env: NodeJS.ProcessEnv, extra: Record<string, unknown> = {}): Store {
  const dir = tempDir('keyhold-fleet-rot-');
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'keyhold.db');
  const configFile = path.join(dir, 'keyhold.json');
  fs.writeFileSync(configFile, JSON.stringify({
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: db } },
    hsm,
    audit: { path: path.join(dir, 'audit.log') },
    rootRotation: { batchSize: 5, pauseMs: 40 },
    ...extra,
  }));
  return { dir, db, configFile, env };
}

async function init(store: Store, args: string[] = []): Promise<void> {
  const r = await runCliTimed(['init', '--config', store.configFile, '--root-token-file', path.join(store.dir, 'root-token'), ...args], store.env, 90_000);
  assert.equal(r.code, 0, `init failed: ${r.stdout}${r.stderr}`);
}

async function serve(store: Store): Promise<DevServer> {
  const server = await startServer(store.configFile, store.env, store.dir);
  cleanups.push(() => server.stop('SIGKILL').catch(() => undefined));
  return server;
}

const sealRecord = (store: Store): Record<string, any> => storedSealRecord(store.db);

/** A wrapped key `k` every store of this file has. */
const writeSome = (server: DevServer, written: Written, tag: string, count: number) => writeSomeTo(server, written, tag, count, ['k']);

/** `keyhold seal rotate-root` against `server`. */
async function rotate(server: DevServer): Promise<any> {
  const r = await runCliTimed(['seal', 'rotate-root'], { KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: server.rootToken }, 60_000);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function rewriteFinished(server: DevServer): Promise<void> {
  await pollUntil('the rewrite finished', async () => (await ok(server, 'GET', '/v1/sys/seal/rotation')).rewriting === false, { timeoutMs: 60_000, intervalMs: 100 });
}

function assertAllUnder(store: Store, generation: number): void {
  const old = [...storedGenerations(store.db)].filter(([, g]) => g !== generation).map(([k, g]) => `${k}@${g}`);
  assert.deepEqual(old, [], `records not under generation ${generation}`);
}

describe('root rotation on an RSA/EC-only token (p11-kit hop, RSA-OAEP seal); backup and restore of that store', { timeout: 240_000 }, () => {
  let fleet: P11KitFleet;
  let store: Store;
  const written: Written = { secrets: new Map(), ciphertexts: [] };

  it('rotates while clients write during the rewrite; restarted, everything reads back and no record is under generation 1', async () => {
    fleet = await startP11KitFleet(1, 'kh-cross-rsa');
    cleanups.push(() => fleet.stop());
    const member = fleet.members[0]!;
    store = newStore({ module: member.module, tokenLabel: fleet.token.label, pinFile: fleet.token.pinFile }, { ...member.config.env });
    await init(store);
    assert.equal(sealRecord(store).method, 'rsa-oaep');
    let server = await serve(store);
    await ok(server, 'POST', '/v1/keys', { name: 'k', type: 'aes256-gcm', protection: 'wrapped' });
    await ok(server, 'POST', '/v1/keys', { name: 'ec', type: 'ec-p256', protection: 'hsm' });
    await writeSome(server, written, 'before', 60);
    const rotated = await rotate(server);
    assert.equal(rotated.generation, 2);
    assert.equal(rotated.rewriting, true);
    await writeSome(server, written, 'during', 30);
    // Keys made and rotated during the rewrite: their material is wrapped by the in-memory wrap key, itself a record being rewritten.
    await ok(server, 'POST', '/v1/keys/k/rotate');
    await ok(server, 'POST', '/v1/keys', { name: 'k2', type: 'rsa-2048', protection: 'wrapped' });
    const k2 = (await ok(server, 'POST', '/v1/keys/k2/encrypt', { plaintext: PLAINTEXT })).ciphertext;
    written.ciphertexts.push({ key: 'k', ciphertext: (await ok(server, 'POST', '/v1/keys/k/encrypt', { plaintext: PLAINTEXT })).ciphertext });
    assert.equal((await ok(server, 'GET', '/v1/sys/seal/rotation')).rewriting, true, 'the writes landed during the rewrite');
    await rewriteFinished(server);
    await writeSome(server, written, 'after', 10);
    assert.equal(await server.stop(), 0, server.output());
    assert.equal(sealRecord(store).method, 'rsa-oaep');
    assertAllUnder(store, 2);

    server = await serve(store);
    await readBack(server, written);
    assert.equal((await ok(server, 'POST', '/v1/keys/k2/decrypt', { ciphertext: k2 })).plaintext, PLAINTEXT);
    const signed = await ok(server, 'POST', '/v1/keys/ec/sign', { input: PLAINTEXT });
    assert.equal((await ok(server, 'POST', '/v1/keys/ec/verify', { input: PLAINTEXT, signature: signed.signature })).valid, true);
    assert.equal(await server.stop(), 0, server.output());
  });

  it('`keyhold backup` of the rotated store restores into a new database on the same token, and reads back', async () => {
    const backupFile = path.join(store.dir, 'store.backup');
    const backup = await runCliTimed(['backup', '--config', store.configFile, '--out', backupFile], store.env, 60_000);
    assert.equal(backup.code, 0, backup.stderr);
    const restoredDir = tempDir('keyhold-fleet-restore-');
    cleanups.push(() => fs.rmSync(restoredDir, { recursive: true, force: true }));
    const config = JSON.parse(fs.readFileSync(store.configFile, 'utf8'));
    const restored: Store = { dir: restoredDir, db: path.join(restoredDir, 'keyhold.db'), configFile: path.join(restoredDir, 'keyhold.json'), env: store.env };
    fs.writeFileSync(restored.configFile, JSON.stringify({ ...config, storage: { sqlite: { path: restored.db } }, audit: { path: path.join(restoredDir, 'audit.log') } }));
    const run = await runCliTimed(['restore', '--in', backupFile, '--config', restored.configFile], store.env, 60_000);
    assert.equal(run.code, 0, run.stderr);
    const server = await startServer(restored.configFile, store.env, store.dir, ['--new-audit-chain']);
    cleanups.push(() => server.stop('SIGKILL').catch(() => undefined));
    await readBack(server, written);
    assert.equal(await server.stop(), 0, server.output());
  });
});

/** The labels of the data objects on `token`, read with pkcs11-tool through `module` (SoftHSM or a p11-kit client). */
function dataObjectLabels(token: SoftHsmTestToken, module: string, env: NodeJS.ProcessEnv): string[] {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const listed = pkcs11Tool(module, token.confPath, ['--token-label', token.label, '--login', '--pin', readPin(token), '-O', '--type', 'data']);
    assert.equal(listed.status, 0, listed.stderr);
    return [...listed.stdout.matchAll(/label:\s+'([^']*)'/g)].map((m) => m[1] as string);
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
}

for (const via of ['softhsm', 'p11-kit'] as const) {
  describe(`root rotation in data-object mode (${via === 'softhsm' ? 'SoftHSM directly' : 'through the p11-kit hop'})`, { timeout: 180_000 }, () => {
    it('the seal record names a new data object, the old one stays in the token, a restart unseals, and a backup from before the rotation still restores', async () => {
      let store: Store;
      let token: SoftHsmTestToken;
      let module: string;
      if (via === 'p11-kit') {
        const fleet = await startP11KitFleet(1, 'kh-cross-dobj');
        cleanups.push(() => fleet.stop());
        const member = fleet.members[0]!;
        token = fleet.token;
        module = member.module;
        store = newStore({ module, tokenLabel: token.label, pinFile: token.pinFile }, { ...member.config.env });
      } else {
        token = makeSoftHsmToken('kh-cross-dobj-direct');
        module = token.module;
        store = newStore(token.config, { SOFTHSM2_CONF: token.confPath });
      }
      cleanups.push(() => fs.rmSync(token.dir, { recursive: true, force: true }));
      await init(store, ['--seal-data-object']);
      const before = sealRecord(store);
      assert.match(before.rootKeyObject, /^keyhold\/seal\/root\//);
      assert.ok(dataObjectLabels(token, module, store.env).includes(before.rootKeyObject));

      const written: Written = { secrets: new Map(), ciphertexts: [] };
      let server = await serve(store);
      await ok(server, 'POST', '/v1/keys', { name: 'k', type: 'aes256-gcm', protection: 'wrapped' });
      await writeSome(server, written, 'before', 20);
      const backupFile = path.join(store.dir, 'before-rotation.backup');
      const backup = await runCliTimed(['backup', '--config', store.configFile, '--out', backupFile], store.env, 60_000);
      assert.equal(backup.code, 0, backup.stderr);
      await rotate(server);
      await writeSome(server, written, 'during', 10);
      await rewriteFinished(server);
      assert.equal(await server.stop(), 0, server.output());

      const afterRotation = sealRecord(store);
      assert.equal(afterRotation.wrappedRootKey, undefined, 'the wrapped root key is not in storage');
      assert.match(afterRotation.rootKeyObject, /^keyhold\/seal\/root\//);
      assert.notEqual(afterRotation.rootKeyObject, before.rootKeyObject);
      const labels = dataObjectLabels(token, module, store.env);
      assert.ok(labels.includes(afterRotation.rootKeyObject), `new object ${afterRotation.rootKeyObject} not in ${labels.join(', ')}`);
      assert.ok(labels.includes(before.rootKeyObject), `old object ${before.rootKeyObject} gone from the token: older backups would no longer restore`);
      assertAllUnder(store, 2);

      server = await serve(store);
      await readBack(server, written);
      assert.equal(await server.stop(), 0, server.output());

      // The old wrapped root key stays in its object: a backup taken before the rotation still
      // restores on this token (into a new database) and reads back what it held.
      const target = path.join(store.dir, 'restored.db');
      const config = JSON.parse(fs.readFileSync(store.configFile, 'utf8'));
      const restoreConfig = path.join(store.dir, 'restore.json');
      fs.writeFileSync(restoreConfig, JSON.stringify({ ...config, storage: { sqlite: { path: target } }, audit: { path: path.join(store.dir, 'restored-audit.log') } }));
      const restore = await runCliTimed(['restore', '--in', backupFile, '--config', restoreConfig], store.env, 60_000);
      assert.equal(restore.code, 0, restore.stderr);
      // A restored store starts a new audit chain (the backup does not carry the audit files).
      const restored = await startServer(restoreConfig, store.env, store.dir, ['--new-audit-chain']);
      cleanups.push(() => restored.stop('SIGKILL').catch(() => undefined));
      for (const [secretPath, value] of written.secrets) {
        if (!secretPath.startsWith('before/')) continue;
        const got = await call(restored.address, 'GET', `/v1/secrets/${secretPath}`, restored.rootToken);
        assert.equal(got.status, 200, got.text);
        assert.equal(got.body.data.v, value);
      }
      assert.equal(await restored.stop(), 0, restored.output());
    });
  });
}

describe('root rotation while one member of a three-member p11-kit cluster is down', { timeout: 180_000 }, () => {
  it('rotates on the remaining members (data-object mode); the killed member rejoins; the server unseals after a restart, also without the first member', async () => {
    const fleet = await startP11KitFleet(3, 'kh-cross-cluster');
    cleanups.push(() => fleet.stop());
    cleanups.push(() => fs.rmSync(fleet.token.dir, { recursive: true, force: true }));
    const [a, b] = fleet.members as [typeof fleet.members[0] & object, typeof fleet.members[0] & object];
    const store = newStore({ members: fleet.members.map((m) => ({ name: m.name, ...m.config })) }, {});
    // Data-object mode: the rotation also writes a new object through the pool (the old one stays, for older backups).
    await init(store, ['--seal-data-object']);
    const written: Written = { secrets: new Map(), ciphertexts: [] };
    let server = await serve(store);
    await ok(server, 'POST', '/v1/keys', { name: 'k', type: 'aes256-gcm', protection: 'wrapped' });
    await writeSome(server, written, 'before', 30);

    // Every member down: the rotation is refused as an outage (503), and nothing changes.
    const sealBefore = sealRecord(store);
    await Promise.all(fleet.members.map((m) => m.kill()));
    const refused = await call(server.address, 'POST', '/v1/sys/seal/rotate-root', server.rootToken);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body.error.code, 'ERR_HSM_UNAVAILABLE');
    assert.deepEqual(sealRecord(store), sealBefore);
    assert.equal((await ok(server, 'GET', '/v1/sys/seal/rotation')).generation, 1);
    await a.start();
    await fleet.members[2]!.start();
    await pollUntil('the members are back', async () => (await call(server.address, 'POST', '/v1/keys/k/encrypt', server.rootToken, { plaintext: PLAINTEXT })).status === 200, { timeoutMs: 10_000, intervalMs: 100 });
    const rotated = await rotate(server);
    assert.equal(rotated.generation, 2);
    await writeSome(server, written, 'during', 10);
    await rewriteFinished(server);
    await b.start();
    await pollUntil('the killed member rejoins', async () => {
      const h = (await call(server.address, 'GET', '/v1/sys/health')).body;
      return h?.hsm?.members?.find((m: { name: string }) => m.name === b.name)?.state === 'up';
    }, { timeoutMs: 10_000, intervalMs: 100 });
    await writeSome(server, written, 'after', 10);
    assert.equal(await server.stop(), 0, server.output());
    assertAllUnder(store, 2);
    const rotatedSeal = sealRecord(store);
    assert.equal(rotatedSeal.method, 'rsa-oaep');
    assert.notEqual(rotatedSeal.rootKeyObject, sealBefore.rootKeyObject);
    const labels = dataObjectLabels(fleet.token, fleet.token.module, {});
    assert.ok(labels.includes(rotatedSeal.rootKeyObject) && labels.includes(sealBefore.rootKeyObject), labels.join(', '));

    server = await serve(store);
    await readBack(server, written);
    assert.equal(await server.stop(), 0, server.output());
    // The member that was down during the rotation is enough to unseal: the cluster keeps one set of keys.
    await a.kill();
    await fleet.members[2]!.kill();
    server = await serve(store);
    await readBack(server, written);
    assert.equal(await server.stop(), 0, server.output());
  });
});
