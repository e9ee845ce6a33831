/**
 * The KMS v2 plugin's speed, as ratios measured in one run:
 *  1. plugin alone over its unix socket vs a bare grpc-js echo server on the same kind of socket
 *     (Encrypt and Decrypt throughput, 32 calls in flight), and HSM calls per Encrypt;
 *  2. cold start: 1,000 distinct DEKs (under 100 local KEKs) decrypted by a freshly started plugin, p99;
 *  3. through a real kube-apiserver: Secret create+get throughput with the keyhold provider vs identity.
 * Usage: npm run bench (or node dist/bench/kms.js). BENCH_SECONDS, BENCH_ROUNDS as in run.js.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadKmsProto } from '../src/kubernetes/kms-plugin/grpc-server.js';
import { startControlPlane, type ControlPlane } from '../test/helpers/control-plane.js';
import { startPluginProcess, type PluginProcess } from '../test/helpers/kms-plugin-process.js';
import { tempDir } from '../test/helpers/server.js';
import { makeSoftHsmToken } from '../test/helpers/softhsm.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const IN_FLIGHT = 32;

type Unary = (request: unknown, callback: (err: grpc.ServiceError | null, res: any) => void) => void;

function client(socket: string): { call(method: 'Encrypt' | 'Decrypt' | 'Status', req: unknown): Promise<any>; close(): void } {
  const c = new (loadKmsProto().KeyManagementService)(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<string, Unary> & grpc.Client;
  return {
    call: (method, req) => new Promise((res, rej) => (c[method] as Unary).call(c, req, (err, r) => (err ? rej(err) : res(r)))),
    close: () => c.close(),
  };
}

/** Closed loop: IN_FLIGHT calls outstanding for SECONDS; returns calls per second and latencies. */
async function closedLoop(make: () => Promise<unknown>, seconds = SECONDS): Promise<{ rps: number; p99ms: number; errors: number }> {
  const end = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (Date.now() < end) {
      const start = process.hrtime.bigint();
      try {
        await make();
      } catch {
        errors++;
      }
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }));
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p99ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0, errors };
}

async function metric(plugin: PluginProcess, name: string): Promise<number> {
  const text = await (await fetch(`${plugin.healthUrl}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

function startEcho(socket: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [resolve(here, 'kms-echo-server.js'), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res) => child.stdout?.once('data', () => res(child)));
}

const work = tempDir('keyhold-kms-bench-');
const token = makeSoftHsmToken('kms-bench');
const results: Record<string, unknown> = { machine: { node: process.version }, seconds_per_run: SECONDS, rounds: ROUNDS, in_flight: IN_FLIGHT };

// 1. Plugin vs echo, alternating rounds so drift hits both sides alike.
{
  const plugin = await startPluginProcess({ socket: join(work, 'plugin.sock'), token, keyLabel: 'bench' });
  const echo = await startEcho(join(work, 'echo.sock'));
  const p = client(join(work, 'plugin.sock'));
  const e = client(join(work, 'echo.sock'));
  try {
    const seed = Buffer.alloc(32, 7);
    const sample = await p.call('Encrypt', { plaintext: seed, uid: 'bench' });
    const decryptRequest = { ciphertext: sample.ciphertext, key_id: sample.key_id, annotations: sample.annotations, uid: 'bench' };
    // The echo gets a request of the same size and shape.
    const echoDecrypt = { ...decryptRequest, key_id: 'echo' };
    for (const [name, pluginCall, echoCall] of [
      ['Encrypt', () => p.call('Encrypt', { plaintext: seed, uid: 'bench' }), () => e.call('Encrypt', { plaintext: seed, uid: 'bench' })],
      ['Decrypt', () => p.call('Decrypt', decryptRequest), () => e.call('Decrypt', echoDecrypt)],
    ] as const) {
      await closedLoop(echoCall, 2);
      await closedLoop(pluginCall, 2);
      const hsmBefore = await metric(plugin, 'keyhold_kms_root_key_calls_total');
      const ceilings = [];
      const plugins = [];
      let pluginCalls = 0;
      for (let round = 0; round < ROUNDS; round++) {
        ceilings.push(await closedLoop(echoCall));
        const r = await closedLoop(pluginCall);
        pluginCalls += r.rps * SECONDS;
        plugins.push(r);
      }
      const hsmCalls = (await metric(plugin, 'keyhold_kms_root_key_calls_total')) - hsmBefore;
      const mean = (rs: Array<{ rps: number }>) => rs.reduce((s, r) => s + r.rps, 0) / rs.length;
      const ratio = mean(plugins) / mean(ceilings);
      results[`plugin_${name.toLowerCase()}`] = {
        echo_rps: Math.round(mean(ceilings)), plugin_rps: Math.round(mean(plugins)), ratio: Number(ratio.toFixed(3)), target: 0.9,
        plugin_p99_ms: Number(Math.max(...plugins.map((r) => r.p99ms)).toFixed(2)), errors: [...plugins, ...ceilings].reduce((s, r) => s + r.errors, 0),
        hsm_calls: hsmCalls, hsm_calls_per_call: Number((hsmCalls / pluginCalls).toFixed(6)),
        verdict: ratio >= 0.9 ? 'meets' : 'MISSES',
      };
    }
  } finally {
    p.close();
    e.close();
    await plugin.stop();
    echo.kill('SIGTERM');
  }
}

// 2. Cold start: 1,000 DEKs under 100 local KEKs (a new KEK every 10 Encrypts), then a fresh plugin decrypts them all.
{
  const socket = join(work, 'cold.sock');
  let plugin = await startPluginProcess({ socket, token, keyLabel: 'cold', extraArgs: ['--kek-max-uses', '10'] });
  let c = client(socket);
  const replies: any[] = [];
  for (let i = 0; i < 1000; i++) replies.push(await c.call('Encrypt', { plaintext: Buffer.alloc(32, i % 256), uid: 'bench' }));
  c.close();
  await plugin.stop();
  plugin = await startPluginProcess({ socket, token, keyLabel: 'cold' });
  // A fresh plugin per concurrency level, so every level starts with nothing unwrapped.
  const levels: Record<string, unknown> = {};
  for (const inFlight of [1, 8, 32]) {
    await plugin.stop();
    plugin = await startPluginProcess({ socket, token, keyLabel: 'cold' });
    c = client(socket);
    // kube-apiserver calls Status before anything else; so does this client (it also opens the connection).
    await c.call('Status', {});
    const hsmBefore = await metric(plugin, 'keyhold_kms_root_key_calls_total');
    const latencies: number[] = [];
    const started = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < replies.length) {
        const r = replies[next++];
        const t = process.hrtime.bigint();
        await c.call('Decrypt', { ciphertext: r.ciphertext, key_id: r.key_id, annotations: r.annotations, uid: 'bench' });
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }));
    const elapsed = Date.now() - started;
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
    levels[`in_flight_${inFlight}`] = {
      hsm_unwraps: (await metric(plugin, 'keyhold_kms_root_key_calls_total')) - hsmBefore,
      p50_ms: Number((latencies[Math.floor(latencies.length / 2)] ?? 0).toFixed(2)), p99_ms: Number(p99.toFixed(2)), total_ms: elapsed,
      verdict: p99 < 10 ? 'meets' : 'MISSES',
    };
    c.close();
  }
  results.cold_decrypt = {
    deks: replies.length, distinct_keks: new Set(replies.map((r) => Buffer.from(r.annotations['kek.keyhold.io']).toString('base64'))).size,
    target_p99_ms: 10, ...levels,
  };
  await plugin.stop();
}

// 3. Through kube-apiserver: Secret create+get with the keyhold provider vs identity, one control plane each, alternating.
{
  const socket = join(work, 'k8s.sock');
  const plugin = await startPluginProcess({ socket, token, keyLabel: 'k8s' });
  const kmsConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms: {apiVersion: v2, name: keyhold, endpoint: "unix://${socket}", timeout: 3s}
      - identity: {}
`;
  const identityConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - identity: {}
`;
  const planes: Record<'keyhold' | 'identity', ControlPlane> = {
    keyhold: await startControlPlane({ encryptionConfig: kmsConfig }),
    identity: await startControlPlane({ encryptionConfig: identityConfig }),
  };
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const api = (cp: ControlPlane, method: string, path: string, body?: unknown) => new Promise<number>((res, rej) => {
      const url = new URL(path, cp.url);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method, agent, ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' } }, (r) => {
        r.resume();
        r.on('end', () => res(r.statusCode ?? 0));
      });
      req.on('error', rej);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    let counter = 0;
    let lastKeyholdSecret = '';
    const createGet = (cp: ControlPlane) => async () => {
      const name = `s-${counter++}`;
      if (cp === planes.keyhold) lastKeyholdSecret = name;
      const created = await api(cp, 'POST', '/api/v1/namespaces/default/secrets', { metadata: { name }, stringData: { value: 'x'.repeat(64) } });
      if (created !== 201) throw new Error(`create ${created}`);
      const got = await api(cp, 'GET', `/api/v1/namespaces/default/secrets/${name}`);
      if (got !== 200) throw new Error(`get ${got}`);
    };
    const loop = async (cp: ControlPlane) => {
      // 16 workers: the apiserver, etcd, the plugin and this client share the machine's cores.
      const end = Date.now() + SECONDS * 1000;
      let done = 0;
      let errors = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (Date.now() < end) {
          try { await createGet(cp)(); done++; } catch { errors++; }
        }
      }));
      return { rps: done / SECONDS, errors };
    };
    await loop(planes.identity);
    await loop(planes.keyhold);
    const identity = [];
    const keyhold = [];
    // Alternating, and each side first in half the rounds, so drift and warm-up hit both alike.
    for (let round = 0; round < ROUNDS + 1; round++) {
      if (round % 2 === 0) {
        identity.push(await loop(planes.identity));
        keyhold.push(await loop(planes.keyhold));
      } else {
        keyhold.push(await loop(planes.keyhold));
        identity.push(await loop(planes.identity));
      }
    }
    const mean = (rs: Array<{ rps: number }>) => rs.reduce((s, r) => s + r.rps, 0) / rs.length;
    const ratio = mean(keyhold) / mean(identity);
    const check = await planes.keyhold.etcdGet(`/registry/secrets/default/${lastKeyholdSecret}`);
    results.apiserver_secret_create_get = {
      identity_pairs_per_s: Math.round(mean(identity)), keyhold_pairs_per_s: Math.round(mean(keyhold)), ratio: Number(ratio.toFixed(3)), target: 0.95,
      errors: [...identity, ...keyhold].reduce((s, r) => s + r.errors, 0),
      keyhold_stored_encrypted: check?.subarray(0, 23).toString('latin1') === 'k8s:enc:kms:v2:keyhold:',
      plugin_encrypt_calls: Number(/keyhold_kms_calls_total\{method="Encrypt",code="OK"\} (\d+)/.exec(await (await fetch(`${plugin.healthUrl}/metrics`)).text())?.[1] ?? 0),
      verdict: ratio >= 0.95 ? 'meets' : 'MISSES',
    };
    agent.destroy();
  } finally {
    await planes.keyhold.stop();
    await planes.identity.stop();
    await plugin.stop();
  }
}

mkdirSync('.bench-out', { recursive: true });
writeFileSync('.bench-out/kms.json', JSON.stringify(results, null, 2));
console.log(JSON.stringify(results, null, 2));

