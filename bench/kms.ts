/**
 * The KMS v2 plugin's speed, as ratios measured in one run:
 *  1. plugin alone over its unix socket vs a bare grpc-js echo server on the same kind of socket
 *     (Encrypt and Decrypt throughput, 32 calls in flight), and HSM calls per Encrypt;
 *  2. cold start: 1,000 distinct DEKs (under 100 local KEKs) decrypted by a freshly started plugin, p99;
 *  3. through a real kube-apiserver: Secret create+get throughput with the keyhold provider vs identity.
 * Usage: npm run bench (or node dist/bench/kms.js). BENCH_SECONDS, BENCH_ROUNDS as in run.js.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadKmsProto } from '../src/kubernetes/kms-plugin/grpc-server.js';
import { startControlPlane, type ControlPlane } from '../test/helpers/control-plane.js';
import { startPluginProcess, type PluginProcess } from '../test/helpers/kms-plugin-process.js';
import { spawnUntilReady } from '../test/helpers/processes.js';
import { tempDir } from '../test/helpers/server.js';
import { makeSoftHsmToken } from '../test/helpers/softhsm.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const IN_FLIGHT = 32;
/** BENCH_ONLY=plugin,cold,apiserver runs a subset (all by default). */
const only = (part: string): boolean => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes(part);

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

async function startEcho(socket: string): Promise<ChildProcess> {
  return (await spawnUntilReady('kms echo server', process.execPath, [resolve(here, 'kms-echo-server.js'), socket], { ready: /echo listening/ })).child;
}

const work = tempDir('keyhold-kms-bench-');
const token = makeSoftHsmToken('kms-bench');
const results: Record<string, unknown> = { machine: { node: process.version }, seconds_per_run: SECONDS, rounds: ROUNDS, in_flight: IN_FLIGHT };

// 1. Plugin vs echo, alternating rounds so drift hits both sides alike.
if (only('plugin')) {
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

// 2. Cold start: 1,000 DEKs under 100 local KEKs (a new KEK every 10 Encrypts), then a freshly
//    started plugin decrypts them all. The same pattern against a freshly started echo server shows
//    what a cold process and gRPC alone cost. kube-apiserver decrypts DEKs one at a time as it
//    reads objects, so 1 in flight is its pattern (the verdict); 8 and 32 are extra information.
if (only('cold')) {
  const socket = join(work, 'cold.sock');
  const plugin = await startPluginProcess({ socket, token, keyLabel: 'cold', extraArgs: ['--kek-max-uses', '10'] });
  const c = client(socket);
  const replies: any[] = [];
  for (let i = 0; i < 1000; i++) replies.push(await c.call('Encrypt', { plaintext: Buffer.alloc(32, i % 256), uid: 'bench' }));
  c.close();
  await plugin.stop();

  const coldRun = async (target: string, inFlight: number, requests: unknown[]): Promise<{ latencies: number[]; elapsed: number }> => {
    const cc = client(target);
    // kube-apiserver calls Status before anything else; so does this client (it also opens the connection).
    await cc.call('Status', {});
    const latencies: number[] = [];
    const started = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < requests.length) {
        const request = requests[next++];
        const t = process.hrtime.bigint();
        await cc.call('Decrypt', request);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }));
    cc.close();
    latencies.sort((a, b) => a - b);
    return { latencies, elapsed: Date.now() - started };
  };
  const pct = (sorted: number[], q: number) => Number((sorted[Math.floor(sorted.length * q)] ?? 0).toFixed(2));
  const pluginRequests = replies.map((r) => ({ ciphertext: r.ciphertext, key_id: r.key_id, annotations: r.annotations, uid: 'bench' }));
  const echoRequests = pluginRequests.map((r) => ({ ...r, key_id: 'echo' }));
  const levels: Record<string, unknown> = {};
  for (const inFlight of [1, 8, 32]) {
    // A fresh plugin and a fresh echo per level, so every level starts cold.
    const fresh = await startPluginProcess({ socket, token, keyLabel: 'cold' });
    const hsmBefore = await metric(fresh, 'keyhold_kms_root_key_calls_total');
    const p = await coldRun(socket, inFlight, pluginRequests);
    const hsmUnwraps = (await metric(fresh, 'keyhold_kms_root_key_calls_total')) - hsmBefore;
    await fresh.stop();
    const echoSocket = join(work, `cold-echo-${inFlight}.sock`);
    const echo = await startEcho(echoSocket);
    const e = await coldRun(echoSocket, inFlight, echoRequests);
    echo.kill('SIGTERM');
    levels[`in_flight_${inFlight}`] = {
      hsm_unwraps: hsmUnwraps,
      plugin_p50_ms: pct(p.latencies, 0.5), plugin_p99_ms: pct(p.latencies, 0.99), plugin_total_ms: p.elapsed,
      echo_p50_ms: pct(e.latencies, 0.5), echo_p99_ms: pct(e.latencies, 0.99),
      ...(inFlight === 1 ? { verdict: pct(p.latencies, 0.99) < 10 ? 'meets' : 'MISSES' } : {}),
    };
  }
  results.cold_decrypt = {
    deks: replies.length, distinct_keks: new Set(replies.map((r) => Buffer.from(r.annotations['kek.keyhold.io']).toString('base64'))).size,
    target_p99_ms: 10, ...levels,
  };
}

// 3. Through kube-apiserver: Secret create+get with the keyhold provider vs identity (the target),
//    and vs kube-apiserver's built-in aesgcm provider with a local key (a reference: the cost of
//    encryption at rest itself, with no plugin at all). One control plane each, rotating the order.
if (only('apiserver')) {
  const socket = join(work, 'k8s.sock');
  const plugin = await startPluginProcess({ socket, token, keyLabel: 'k8s' });
  const config = (provider: string) => `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
${provider}      - identity: {}
`;
  const echoSocket = join(work, 'k8s-echo.sock');
  const echo = await startEcho(echoSocket);
  const names = ['identity', 'keyhold', 'aesgcm', 'kmsEcho'] as const;
  const planes: Record<(typeof names)[number], ControlPlane> = {
    identity: await startControlPlane({ encryptionConfig: config('') }),
    keyhold: await startControlPlane({ encryptionConfig: config(`      - kms: {apiVersion: v2, name: keyhold, endpoint: "unix://${socket}", timeout: 3s}\n`) }),
    aesgcm: await startControlPlane({ encryptionConfig: config(`      - aesgcm: {keys: [{name: k1, secret: "${randomBytes(32).toString('base64')}"}]}\n`) }),
    // A trivial KMS v2 plugin (the echo server: "ciphertext" = plaintext): what kube-apiserver's KMS v2 path costs with any plugin.
    kmsEcho: await startControlPlane({ encryptionConfig: config(`      - kms: {apiVersion: v2, name: echo, endpoint: "unix://${echoSocket}", timeout: 3s}\n`) }),
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
    const createGet = async (cp: ControlPlane) => {
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
          try { await createGet(cp); done++; } catch { errors++; }
        }
      }));
      return { rps: done / SECONDS, errors };
    };
    const runs: Record<string, Array<{ rps: number; errors: number }>> = { identity: [], keyhold: [], aesgcm: [], kmsEcho: [] };
    for (const name of names) await loop(planes[name]); // warm-up
    // Each round rotates which plane goes first, so drift and warm-up hit all alike.
    const rounds = Math.max(3, ROUNDS + 1);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + i) % names.length] as (typeof names)[number];
        runs[name]?.push(await loop(planes[name]));
      }
    }
    const mean = (rs: Array<{ rps: number }>) => rs.reduce((sum, r) => sum + r.rps, 0) / rs.length;
    const ratio = mean(runs.keyhold ?? []) / mean(runs.identity ?? []);
    const check = await planes.keyhold.etcdGet(`/registry/secrets/default/${lastKeyholdSecret}`);
    results.apiserver_secret_create_get = {
      rounds,
      identity_pairs_per_s: Math.round(mean(runs.identity ?? [])), keyhold_pairs_per_s: Math.round(mean(runs.keyhold ?? [])),
      aesgcm_pairs_per_s: Math.round(mean(runs.aesgcm ?? [])),
      ratio: Number(ratio.toFixed(3)), target: 0.95,
      reference_aesgcm_over_identity: Number((mean(runs.aesgcm ?? []) / mean(runs.identity ?? [])).toFixed(3)),
      keyhold_over_aesgcm: Number((mean(runs.keyhold ?? []) / mean(runs.aesgcm ?? [])).toFixed(3)),
      kms_echo_pairs_per_s: Math.round(mean(runs.kmsEcho ?? [])),
      reference_kms_echo_over_identity: Number((mean(runs.kmsEcho ?? []) / mean(runs.identity ?? [])).toFixed(3)),
      keyhold_over_kms_echo: Number((mean(runs.keyhold ?? []) / mean(runs.kmsEcho ?? [])).toFixed(3)),
      errors: Object.values(runs).flat().reduce((sum, r) => sum + r.errors, 0),
      keyhold_stored_encrypted: check?.subarray(0, 23).toString('latin1') === 'k8s:enc:kms:v2:keyhold:',
      plugin_encrypt_calls: Number(/keyhold_kms_calls_total\{method="Encrypt",code="OK"\} (\d+)/.exec(await (await fetch(`${plugin.healthUrl}/metrics`)).text())?.[1] ?? 0),
      verdict: ratio >= 0.95 ? 'meets' : 'MISSES',
    };
    agent.destroy();
  } finally {
    for (const name of names) await planes[name].stop();
    await plugin.stop();
    echo.kill('SIGTERM');
  }
}

mkdirSync('.bench-out', { recursive: true });
writeFileSync('.bench-out/kms.json', JSON.stringify(results, null, 2));
console.log(JSON.stringify(results, null, 2));

