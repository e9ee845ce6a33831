/**
 * The KMS v2 plugin in server mode: the root key is an aes256-gcm key of a real `keyhold dev`
 * server, used with a token whose policy grants only read/encrypt/decrypt on that key.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { KeyholdClient } from '../../../src/client/client.js';
import { startKmsPlugin, type RunningKmsPlugin } from '../../../src/kubernetes/kms-plugin/plugin.js';
import { KmsTestClient, type GrpcError } from '../../helpers/kms-client.js';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';

const work = tempDir('keyhold-kms-server-');

describe('kms-plugin (server mode, keyhold dev)', () => {
  let dev: DevServer;
  let root: KeyholdClient;
  let pluginToken: string;
  let p: RunningKmsPlugin;
  let client: KmsTestClient;
  let log = '';

  before(async () => {
    dev = await startDev(join(work, 'dev'));
    root = new KeyholdClient({ address: dev.address, token: dev.rootToken });
    await root.createKey('k8s-kms', 'aes256-gcm', 'hsm');
    await root.putPolicy('kms-plugin', [{ path: 'keys/k8s-kms', capabilities: ['read', 'encrypt', 'decrypt'] }]);
    pluginToken = (await root.createToken(['kms-plugin'])).token;
    p = await startKmsPlugin({
      listen: join(work, 'kms.sock'),
      rootKey: { mode: 'server', address: dev.address, token: pluginToken, keyName: 'k8s-kms' },
      rootKeyRefreshMs: 0,
      logger: pino({ level: 'info' }, new Writable({ write(chunk, _e, done) { log += chunk.toString(); done(); } })),
    });
    client = new KmsTestClient(p.socket.grpc);
  });
  after(async () => {
    client?.close();
    await p?.close();
    await dev?.stop();
  });

  it('serves Status ok and round-trips; Encrypt makes no server call in steady state', async () => {
    const s = await client.status();
    assert.equal(s.healthz, 'ok');
    const first = await client.encrypt(Buffer.alloc(32, 1));
    assert.equal(first.key_id, s.key_id);
    const calls = p.service.rootCalls;
    for (let i = 0; i < 200; i++) await client.encrypt(Buffer.alloc(32, i));
    assert.equal(p.service.rootCalls, calls);
    assert.deepEqual(await client.decrypt(first), Buffer.alloc(32, 1));
    assert.ok(!log.includes(pluginToken), 'the token is never logged');
  });

  it('rotating the server key changes key_id at the next Status; retiring via min_decryption_version refuses the old key_id', async () => {
    const before = await client.status();
    const old = await client.encrypt(Buffer.alloc(32, 0x11));
    await root.rotateKey('k8s-kms');
    const after = await client.status();
    assert.notEqual(after.key_id, before.key_id);
    const fresh = await client.encrypt(Buffer.alloc(32, 0x22));
    assert.equal(fresh.key_id, after.key_id);
    // A cold plugin must unwrap through the server: old and new both decrypt…
    const cold = await startKmsPlugin({
      listen: join(work, 'cold.sock'),
      rootKey: { mode: 'server', address: dev.address, token: pluginToken, keyName: 'k8s-kms' },
      logger: pino({ level: 'silent' }),
    });
    const coldClient = new KmsTestClient(cold.socket.grpc);
    try {
      assert.deepEqual(await coldClient.decrypt(old), Buffer.alloc(32, 0x11));
      await root.configureKey('k8s-kms', { min_decryption_version: 2 });
      // …until the old version is retired on the server (the cold plugin has the old KEK cached, so use a third).
      const third = await startKmsPlugin({
        listen: join(work, 'third.sock'),
        rootKey: { mode: 'server', address: dev.address, token: pluginToken, keyName: 'k8s-kms' },
        logger: pino({ level: 'silent' }),
      });
      const thirdClient = new KmsTestClient(third.socket.grpc);
      try {
        await assert.rejects(thirdClient.decrypt(old), (err: GrpcError) => err.code === status.FAILED_PRECONDITION);
        assert.deepEqual(await thirdClient.decrypt(fresh), Buffer.alloc(32, 0x22));
      } finally {
        thirdClient.close();
        await third.close();
      }
      // The cold plugin has the old KEK cached: after its next Status (a fresh look-up) it refuses it too.
      await coldClient.status();
      await assert.rejects(coldClient.decrypt(old), (err: GrpcError) => err.code === status.FAILED_PRECONDITION);
      assert.deepEqual(await coldClient.decrypt(fresh), Buffer.alloc(32, 0x22));
    } finally {
      coldClient.close();
      await cold.close();
    }
  });

  it('a token without decrypt on the key: Decrypt of an uncached KEK fails PERMISSION_DENIED, Status stays honest', async () => {
    await root.putPolicy('kms-encrypt-only', [{ path: 'keys/k8s-kms', capabilities: ['read', 'encrypt'] }]);
    const weak = (await root.createToken(['kms-encrypt-only'])).token;
    const reply = await client.encrypt(Buffer.alloc(32, 7));
    const q = await startKmsPlugin({ listen: join(work, 'weak.sock'), rootKey: { mode: 'server', address: dev.address, token: weak, keyName: 'k8s-kms' }, logger: pino({ level: 'silent' }) });
    const qc = new KmsTestClient(q.socket.grpc);
    try {
      await assert.rejects(qc.decrypt(reply), (err: GrpcError) => err.code === status.PERMISSION_DENIED);
      // It can still wrap new KEKs (read + encrypt), so it is honestly healthy: Encrypt works.
      assert.equal((await qc.status()).healthz, 'ok');
      assert.ok((await qc.encrypt(Buffer.alloc(32, 8))).ciphertext.length > 0);
    } finally {
      qc.close();
      await q.close();
    }
  });

  it('server gone: Status is not ok within its deadline, Encrypt with the in-memory KEK still works, Decrypt of a new KEK is UNAVAILABLE', async () => {
    const cached = await client.encrypt(Buffer.alloc(32, 9));
    await dev.stop();
    const started = Date.now();
    const s = await client.status();
    assert.notEqual(s.healthz, 'ok');
    assert.ok(Date.now() - started < 3000, 'Status answered within the apiserver timeout');
    assert.deepEqual(await client.decrypt(cached), Buffer.alloc(32, 9));
    assert.ok((await client.encrypt(Buffer.alloc(32, 10))).ciphertext.length > 0, 'Encrypt needs no server');
    const cold = await startKmsPlugin({ listen: join(work, 'gone.sock'), rootKey: { mode: 'server', address: dev.address, token: pluginToken, keyName: 'k8s-kms' }, logger: pino({ level: 'silent' }) });
    const coldClient = new KmsTestClient(cold.socket.grpc);
    try {
      await assert.rejects(coldClient.decrypt(cached), (err: GrpcError) => err.code === status.UNAVAILABLE);
      assert.notEqual((await coldClient.status()).healthz, 'ok');
    } finally {
      coldClient.close();
      await cold.close();
    }
  });
});
