/**
 * The KMS v2 plugin in direct mode against a real SoftHSM token, over its real unix socket with a
 * grpc-js client (kube-apiserver's side of the contract). The end-to-end tests with a real
 * kube-apiserver are in test/integration/kubernetes/.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstatSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { startKmsPlugin, type RunningKmsPlugin } from '../../../src/kubernetes/kms-plugin/plugin.js';
import { KmsTestClient, type EncryptReply, type GrpcError } from '../../helpers/kms-client.js';
import { CLI, tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken, readPin } from '../../helpers/softhsm.js';
import { spawnUntilReady } from '../../helpers/processes.js';
import { pollUntil } from '../../helpers/wait.js';

const run = promisify(execFile);
const token = makeSoftHsmToken('kms-plugin-test');
const work = tempDir('keyhold-kms-');
const LABEL = 'kms-test';

function captureLogger(): { logger: pino.Logger; lines: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk, _enc, done) { text += chunk.toString(); done(); } });
  return { logger: pino({ level: 'info' }, stream), lines: () => text };
}

async function plugin(name: string, overrides: Partial<Parameters<typeof startKmsPlugin>[0]> = {}): Promise<RunningKmsPlugin & { client: KmsTestClient; log: () => string }> {
  const { logger, lines } = captureLogger();
  const running = await startKmsPlugin({
    listen: join(work, `${name}.sock`),
    healthListen: '127.0.0.1:0',
    rootKey: { mode: 'direct', hsm: token.config, keyLabel: LABEL },
    logger,
    ...overrides,
  });
  return Object.assign(running, { client: new KmsTestClient(running.socket.grpc), log: lines });
}

async function cli(...args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [CLI, 'kms-plugin', ...args, '--hsm-module', token.module, '--hsm-token-label', token.label, '--hsm-pin-file', token.pinFile, '--key-label', LABEL],
    { env: { ...process.env, SOFTHSM2_CONF: token.confPath } });
  return JSON.parse(stdout);
}

function grpcCode(expected: status): (err: unknown) => boolean {
  return (err) => {
    assert.equal((err as GrpcError).code, expected, `expected gRPC ${status[expected]}, got ${status[(err as GrpcError).code]}: ${(err as GrpcError).details}`);
    return true;
  };
}

describe('kms-plugin (direct mode, SoftHSM)', () => {
  let p: Awaited<ReturnType<typeof plugin>>;
  before(async () => { p = await plugin('main'); });
  after(async () => { p.client.close(); await p.close(); });

  it('Status: ok, version v2, a stable opaque key_id of at most 1 KiB', async () => {
    const s = await p.client.status();
    assert.equal(s.healthz, 'ok');
    assert.equal(s.version, 'v2');
    assert.match(s.key_id, /^keyhold-[A-Za-z0-9_-]{43}$/);
    assert.ok(!s.key_id.includes(LABEL) && !s.key_id.includes(token.label), 'key_id leaks nothing');
    assert.equal((await p.client.status()).key_id, s.key_id);
  });

  it('the socket is a 0600 unix socket', () => {
    const stat = lstatSync(p.socket.path as string);
    assert.ok(stat.isSocket());
    assert.equal(stat.mode & 0o777, 0o600);
  });

  it('Encrypt/Decrypt round-trip a 32-byte seed; output within the contract limits; equal plaintexts give different ciphertexts', async () => {
    const seed = Buffer.alloc(32, 9);
    const a = await p.client.encrypt(seed);
    const b = await p.client.encrypt(seed);
    assert.equal(a.key_id, (await p.client.status()).key_id);
    assert.deepEqual(Object.keys(a.annotations), ['kek.keyhold.io']);
    assert.ok(a.ciphertext.length > 0 && a.ciphertext.length <= 1024);
    assert.ok(!a.ciphertext.equals(b.ciphertext));
    assert.deepEqual(await p.client.decrypt(a), seed);
    assert.deepEqual(await p.client.decrypt(b), seed);
    assert.ok(!a.ciphertext.includes(seed));
  });

  it('Encrypt makes no HSM call in steady state (1,000 calls counted)', async () => {
    await p.client.encrypt(Buffer.alloc(32, 1));
    const before = p.service.rootCalls;
    await Promise.all(Array.from({ length: 1000 }, (_, i) => p.client.encrypt(Buffer.alloc(32, i % 256))));
    assert.equal(p.service.rootCalls - before, 0);
  });

  it('rejects bad Encrypt input with INVALID_ARGUMENT: empty, too large', async () => {
    await assert.rejects(p.client.encrypt(Buffer.alloc(0)), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.encrypt(Buffer.alloc(996)), grpcCode(status.INVALID_ARGUMENT));
    assert.ok((await p.client.encrypt(Buffer.alloc(995))).ciphertext.length <= 1024);
  });

  it('rejects tampering: a flipped bit anywhere, mixed-up ciphertexts, a foreign or unknown annotation, another key_id', async () => {
    const good = await p.client.encrypt(Buffer.alloc(32, 3));
    const other = await p.client.encrypt(Buffer.alloc(32, 4));
    for (let byte = 0; byte < good.ciphertext.length; byte += 7) {
      const ciphertext = Buffer.from(good.ciphertext);
      ciphertext[byte] = (ciphertext[byte] as number) ^ 0x10;
      await assert.rejects(p.client.decrypt({ ...good, ciphertext }), grpcCode(status.INVALID_ARGUMENT), `byte ${byte}`);
    }
    const annotation = good.annotations['kek.keyhold.io'] as Buffer;
    for (let byte = 0; byte < annotation.length; byte += 5) {
      const flipped = Buffer.from(annotation);
      flipped[byte] = (flipped[byte] as number) ^ 0x01;
      await assert.rejects(p.client.decrypt({ ...good, annotations: { 'kek.keyhold.io': flipped } }), grpcCode(status.INVALID_ARGUMENT), `annotation byte ${byte}`);
    }
    // A whole ciphertext from another Encrypt under the same KEK is a valid ciphertext (it decrypts to
    // its own plaintext); what must fail is mixing parts: its ciphertext with a bit of ours.
    const mixed = Buffer.concat([other.ciphertext.subarray(0, 13), good.ciphertext.subarray(13)]);
    await assert.rejects(p.client.decrypt({ ...good, ciphertext: mixed }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, annotations: {} }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, annotations: { ...good.annotations, 'extra.example.com': Buffer.from('x') } }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, annotations: { 'Not An FQDN': Buffer.from('x') } }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, key_id: 'keyhold-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), grpcCode(status.NOT_FOUND));
    await assert.rejects(p.client.decrypt({ ...good, key_id: '' }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, ciphertext: Buffer.alloc(2000) }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(p.client.decrypt({ ...good, annotations: { 'kek.keyhold.io': Buffer.alloc(100 * 1024) } }), grpcCode(status.RESOURCE_EXHAUSTED));
    // Still healthy and still decrypting.
    assert.equal((await p.client.status()).healthz, 'ok');
    assert.deepEqual(await p.client.decrypt(good), Buffer.alloc(32, 3));
  });

  it('health endpoint and metrics', async () => {
    const healthz = await fetch(`${p.healthUrl}/healthz`);
    assert.equal(healthz.status, 200);
    assert.equal((await healthz.text()).trim(), 'ok');
    assert.equal((await fetch(`${p.healthUrl}/readyz`)).status, 200);
    assert.equal((await fetch(`${p.healthUrl}/livez`)).status, 200);
    const metrics = await (await fetch(`${p.healthUrl}/metrics`)).text();
    for (const name of ['keyhold_kms_calls_total{method="Encrypt",code="OK"}', 'keyhold_kms_call_duration_seconds_bucket', 'keyhold_kms_root_key_calls_total', 'keyhold_kms_kek_cache_hits_total', 'keyhold_kms_kek_cache_misses_total', 'keyhold_kms_kek_rotations_total{reason="initial"}', 'keyhold_kms_healthy 1']) {
      assert.ok(metrics.includes(name), `metrics lack ${name}`);
    }
    assert.ok(/keyhold_kms_calls_total\{method="Decrypt",code="ERR_CIPHERTEXT_INVALID"\} [1-9]/.test(metrics));
  });

  it('a restarted (cold) plugin decrypts what the old one encrypted: one HSM unwrap per KEK, then cache hits', async () => {
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => p.client.encrypt(Buffer.alloc(32, i))));
    const cold = await plugin('cold');
    try {
      const before = cold.service.rootCalls;
      const plain = await Promise.all(replies.map((r) => cold.client.decrypt(r)));
      plain.forEach((pt, i) => assert.deepEqual(pt, Buffer.alloc(32, i)));
      assert.equal(cold.service.rootCalls - before, 1, 'all 50 share one KEK: one unwrap, shared by concurrent callers');
    } finally {
      cold.client.close();
      await cold.close();
    }
  });

  it('rotates the local KEK after max uses without changing key_id; older KEKs still decrypt; annotations cannot be swapped', async () => {
    const small = await plugin('small', { kek: { maxUses: 10 } });
    try {
      const replies: EncryptReply[] = [];
      for (let i = 0; i < 35; i++) replies.push(await small.client.encrypt(Buffer.alloc(32, i)));
      const annotations = new Set(replies.map((r) => (r.annotations['kek.keyhold.io'] as Buffer).toString('base64')));
      assert.ok(annotations.size >= 3, `expected ≥ 3 KEKs, saw ${annotations.size}`);
      assert.equal(new Set(replies.map((r) => r.key_id)).size, 1);
      // An annotation (wrapped KEK) swapped in from another Encrypt under another KEK fails.
      const first = replies[0] as EncryptReply;
      const last = replies.at(-1) as EncryptReply;
      assert.notDeepEqual(first.annotations, last.annotations);
      await assert.rejects(small.client.decrypt({ ...first, annotations: last.annotations }), grpcCode(status.INVALID_ARGUMENT));
      for (const [i, r] of replies.entries()) assert.deepEqual(await small.client.decrypt(r), Buffer.alloc(32, i));
    } finally {
      small.client.close();
      await small.close();
    }
  });

  it('rotation from another process: the next Status reports the new key_id, old ciphertexts decrypt; retire makes the old key_id unknown', async () => {
    const before = await p.client.status();
    const old = await p.client.encrypt(Buffer.alloc(32, 0xaa));
    const listed = await cli('versions');
    assert.equal(listed.versions.at(-1).key_id, before.key_id);
    const rotated = await cli('rotate');
    assert.equal(rotated.version, listed.newest + 1);
    const after = await p.client.status();
    assert.equal(after.healthz, 'ok');
    assert.equal(after.key_id, rotated.key_id);
    assert.notEqual(after.key_id, before.key_id);
    const fresh = await p.client.encrypt(Buffer.alloc(32, 0xbb));
    assert.equal(fresh.key_id, after.key_id);
    assert.deepEqual(await p.client.decrypt(old), Buffer.alloc(32, 0xaa));
    // The newest version cannot be retired; an old one can.
    await assert.rejects(cli('retire', '--version', String(rotated.version)));
    await cli('retire', '--version', String(listed.newest));
    // The running plugin held the old KEK in its cache: after its next Status (which looks the
    // versions up again) the retired key_id is refused there too.
    assert.equal((await p.client.status()).key_id, after.key_id);
    await assert.rejects(p.client.decrypt(old), grpcCode(status.NOT_FOUND));
    assert.deepEqual(await p.client.decrypt(fresh), Buffer.alloc(32, 0xbb));
    // A cold plugin no longer knows the retired key_id; the new one still works.
    const cold = await plugin('after-retire');
    try {
      await assert.rejects(cold.client.decrypt(old), grpcCode(status.NOT_FOUND));
      assert.deepEqual(await cold.client.decrypt(fresh), Buffer.alloc(32, 0xbb));
      assert.equal((await cold.client.status()).key_id, after.key_id);
    } finally {
      cold.client.close();
      await cold.close();
    }
  });

  it('refuses a socket another process serves; replaces a stale one; removes its socket on close', async () => {
    await assert.rejects(plugin('main'), /another process is serving/);
    const stalePath = join(work, 'stale.sock');
    // A process killed with -9 leaves its socket file behind.
    const holder = await spawnUntilReady('socket holder', process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => console.log('up'))`], { ready: /up/ });
    await holder.stop('SIGKILL');
    assert.ok(existsSync(stalePath));
    const stale = await plugin('stale');
    assert.equal((await stale.client.status()).healthz, 'ok');
    stale.client.close();
    await stale.close();
    assert.ok(!existsSync(stalePath), 'socket removed on close');
  });
});

describe('kms-plugin with a wrong PIN', () => {
  it('reports unhealthy with a clear log line, never retries the same PIN, and recovers when the PIN file is fixed', async () => {
    const pinFile = join(work, 'wrong-pin');
    writeFileSync(pinFile, 'not-the-pin\n', { mode: 0o600 });
    const p = await plugin('wrong-pin', {
      rootKey: { mode: 'direct', hsm: { ...token.config, pinFile }, keyLabel: LABEL },
      backoff: { minMs: 50, maxMs: 200, pinRecheckMs: 100 },
    });
    try {
      const s = await p.client.status();
      assert.notEqual(s.healthz, 'ok');
      assert.match(s.healthz, /PIN is incorrect/);
      assert.equal((await fetch(`${p.healthUrl}/healthz`)).status, 503);
      await assert.rejects(p.client.encrypt(Buffer.alloc(32)), grpcCode(status.UNAVAILABLE));
      await new Promise((r) => setTimeout(r, 1000));
      const loginFailures = p.log().split('\n').filter((l) => l.includes('Not retrying with this PIN')).length;
      assert.equal(loginFailures, 1, 'one failed login, logged once, not retried with the same PIN');
      assert.ok(!p.log().includes(readPin(token)) && !p.log().includes('not-the-pin'), 'the log holds no PIN');
      writeFileSync(pinFile, `${readPin(token)}\n`);
      await pollUntil('the plugin to recover after the PIN was fixed', async () => (await p.client.status()).healthz === 'ok', { timeoutMs: 10_000, intervalMs: 100 });
      const reply = await p.client.encrypt(Buffer.alloc(32, 5));
      assert.deepEqual(await p.client.decrypt(reply), Buffer.alloc(32, 5));
    } finally {
      p.client.close();
      await p.close();
    }
  });
});
