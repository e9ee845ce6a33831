/**
 * The HSM fleet: what the network hop costs, and what losing a cluster member costs.
 *
 * 1. Throughput of three requests on three servers, each with its own store and token:
 *    - `direct`: SoftHSM loaded into the server (AES-GCM seal), the reference;
 *    - `hop-1`: the same kind of token reached through one `p11-kit server` (RSA-OAEP seal: the hop
 *      has no AES-GCM);
 *    - `hop-3`: a cluster of three p11-kit servers in front of one token directory.
 *    Requests: encrypt with a `wrapped` key and a secret read (no HSM call per request once the
 *    key's material is loaded, so these show what the seal method and pool cost around a request),
 *    and a signature with an `hsm` EC key (one HSM call per request: the hop itself).
 * 2. Failover: 30 s of mixed load (encrypt, secret read, hsm sign) on `hop-3`; one member's
 *    process group is killed at 10 s. Reports failed requests, throughput before and after, and
 *    the hsm-sign throughput after the kill against the one-member figure.
 *
 * Usage: node dist/bench/fleet.js (scripts/bench.sh runs it). Writes .bench-out/fleet.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startP11KitFleet, type P11KitFleet } from '../test/helpers/p11kit.js';
import { CLI, call, startServer, tempDir, type DevServer } from '../test/helpers/server.js';
import { makeSoftHsmToken } from '../test/helpers/softhsm.js';
import { load, type LoadResult } from './load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const FAILOVER_SECONDS = Number(process.env.BENCH_FAILOVER_SECONDS ?? 30);
const KILL_AT_SECONDS = Number(process.env.BENCH_KILL_AT_SECONDS ?? 10);

interface Target { name: string; server: DevServer; }

/** Initialises a store for `hsm` and starts a server on it. */
async function serve(name: string, hsm: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<DevServer> {
  const dir = tempDir(`keyhold-bench-${name}-`);
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: join(dir, 'keyhold.db') } },
    hsm,
    audit: { path: join(dir, 'audit.log') },
  }));
  const init = spawnSync(process.execPath, [CLI, 'init', '--config', configFile, '--root-token-file', join(dir, 'root-token')], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`${name}: init failed: ${init.stderr}`);
  return startServer(configFile, env, dir);
}

async function prepare(t: Target): Promise<void> {
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await call(t.server.address, method, path, t.server.rootToken, body);
    if (r.status >= 300) throw new Error(`${t.name}: ${method} ${path}: ${r.status} ${r.text}`);
  };
  await ok('POST', '/v1/keys', { name: 'bench-wrapped', type: 'aes256-gcm', protection: 'wrapped' });
  await ok('POST', '/v1/keys', { name: 'bench-hsm-ec', type: 'ec-p256', protection: 'hsm' });
  await ok('PUT', '/v1/secrets/bench/app', { data: { username: 'app', password: 'x'.repeat(32) } });
}

const encryptBody = JSON.stringify({ plaintext: Buffer.alloc(64, 7).toString('base64') });
const signBody = JSON.stringify({ input: Buffer.alloc(64, 9).toString('base64') });

const scenarios: Array<{ name: string; connections: number; run: (t: Target, seconds?: number) => Promise<LoadResult> }> = [
  { name: 'wrapped-key encrypt, 64 B', connections: 32, run: (t, s) => load(`${t.server.address}/v1/keys/bench-wrapped/encrypt`, { method: 'POST', body: encryptBody, token: t.server.rootToken, seconds: s ?? SECONDS, connections: 32 }) },
  { name: 'secret read', connections: 32, run: (t, s) => load(`${t.server.address}/v1/secrets/bench/app`, { token: t.server.rootToken, seconds: s ?? SECONDS, connections: 32 }) },
  ...[8, 32].map((connections) => ({
    name: 'hsm EC key sign (one HSM call)', connections,
    run: (t: Target, s?: number) => load(`${t.server.address}/v1/keys/bench-hsm-ec/sign`, { method: 'POST', body: signBody, token: t.server.rootToken, seconds: s ?? SECONDS, connections }),
  })),
];

interface Outcome { at: number; ok: boolean; kind: string }

/** A closed loop of `connections` workers cycling through the three requests; records every outcome. */
const MIXED = [
  { kind: 'encrypt', method: 'POST', path: '/v1/keys/bench-wrapped/encrypt', body: encryptBody },
  { kind: 'read', method: 'GET', path: '/v1/secrets/bench/app', body: undefined },
  { kind: 'hsm-sign', method: 'POST', path: '/v1/keys/bench-hsm-ec/sign', body: signBody },
] as const;
type BenchRequest = (typeof MIXED)[number];

async function mixedLoad(t: Target, seconds: number, connections: number, onSecond: (s: number) => void, requests: readonly BenchRequest[] = MIXED): Promise<Outcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(t.server.address);
  const outcomes: Outcome[] = [];
  const started = Date.now();
  const end = started + seconds * 1000;
  let lastSecond = -1;
  const one = (r: BenchRequest) => new Promise<boolean>((resolve) => {
    const req = request({ host: url.hostname, port: url.port, method: r.method, path: r.path, agent, headers: { authorization: `Bearer ${t.server.rootToken}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve((res.statusCode ?? 0) < 300));
    });
    req.on('error', () => resolve(false));
    req.end(r.body);
  });
  await Promise.all(Array.from({ length: connections }, async (_, worker) => {
    for (let i = worker; Date.now() < end; i++) {
      const r = requests[i % requests.length] as BenchRequest;
      const ok = await one(r);
      const now = Date.now();
      outcomes.push({ at: now - started, ok, kind: r.kind });
      const second = Math.floor((now - started) / 1000);
      if (second !== lastSecond) { lastSecond = second; onSecond(second); }
    }
  }));
  agent.destroy();
  return outcomes;
}

function rate(outcomes: Outcome[], fromMs: number, toMs: number, kind?: string): number {
  const n = outcomes.filter((o) => o.ok && o.at >= fromMs && o.at < toMs && (!kind || o.kind === kind)).length;
  return n / ((toMs - fromMs) / 1000);
}

let fleet1: P11KitFleet | undefined;
let fleet3: P11KitFleet | undefined;
const servers: DevServer[] = [];
try {
  const direct = makeSoftHsmToken('bench-direct');
  const directEnv = { SOFTHSM2_CONF: direct.confPath };
  fleet1 = await startP11KitFleet(1, 'bench-hop-1');
  fleet3 = await startP11KitFleet(3, 'bench-hop-3');
  const member = (m: P11KitFleet['members'][number]) => ({ name: m.name, module: m.module, env: m.config.env, tokenLabel: m.config.tokenLabel, pinFile: m.config.pinFile });
  const hop1 = fleet1.members[0] as P11KitFleet['members'][number];
  const targets: Target[] = [
    { name: 'direct', server: await serve('direct', direct.config as unknown as Record<string, unknown>, directEnv) },
    { name: 'hop-1', server: await serve('hop-1', { members: [member(hop1)] }, {}) },
    { name: 'hop-3', server: await serve('hop-3', { members: fleet3.members.map(member) }, {}) },
  ];
  servers.push(...targets.map((t) => t.server));
  for (const t of targets) await prepare(t);

  const results: Array<Record<string, unknown>> = [];
  for (const s of scenarios) {
    for (const t of targets) await s.run(t, 2); // warm-up
    const runs = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) for (const t of targets) runs.get(t.name)?.push(await s.run(t));
    const mean = (name: string) => { const rs = runs.get(name) as LoadResult[]; return rs.reduce((sum, r) => sum + r.rps, 0) / rs.length; };
    const base = mean('direct');
    results.push({
      scenario: s.name, connections: s.connections,
      direct_rps: Math.round(base),
      hop_1_rps: Math.round(mean('hop-1')), hop_1_ratio: Number((mean('hop-1') / base).toFixed(3)),
      hop_3_rps: Math.round(mean('hop-3')), hop_3_ratio: Number((mean('hop-3') / base).toFixed(3)),
      failed_requests: Object.fromEntries(targets.map((t) => [t.name, (runs.get(t.name) as LoadResult[]).reduce((sum, r) => sum + r.non2xx + r.errors, 0)])),
    });
  }
  const oneMemberSign = (results.find((r) => r.scenario === 'hsm EC key sign (one HSM call)' && r.connections === 32)?.hop_1_rps as number) ?? 0;

  // Failover: kill member b of hop-3 at KILL_AT_SECONDS, under mixed load.
  const cluster = targets[2] as Target;
  const victim = fleet3.members[1] as P11KitFleet['members'][number];
  let killedAt = -1;
  const outcomes = await mixedLoad(cluster, FAILOVER_SECONDS, 32, (second) => {
    if (second === KILL_AT_SECONDS && killedAt < 0) { killedAt = second * 1000; void victim.kill(); }
  });
  const failed = outcomes.filter((o) => !o.ok);
  const before = { from: 2000, to: killedAt };
  const after = { from: killedAt + 2000, to: FAILOVER_SECONDS * 1000 };
  const failover = {
    seconds: FAILOVER_SECONDS, killed_member: victim.name, killed_at_s: killedAt / 1000, connections: 32,
    requests: outcomes.length, failed_requests: failed.length,
    failed_by_kind: Object.fromEntries(['encrypt', 'read', 'hsm-sign'].map((k) => [k, failed.filter((o) => o.kind === k).length])),
    failed_at_ms: failed.slice(0, 20).map((o) => o.at),
    rps_before_kill: Math.round(rate(outcomes, before.from, before.to)),
    rps_after_kill: Math.round(rate(outcomes, after.from, after.to)),
    hsm_sign_rps_before_kill: Math.round(rate(outcomes, before.from, before.to, 'hsm-sign')),
    hsm_sign_rps_after_kill: Math.round(rate(outcomes, after.from, after.to, 'hsm-sign')),
    ratio_after_to_before: Number((rate(outcomes, after.from, after.to) / rate(outcomes, before.from, before.to)).toFixed(3)),
    one_member_hsm_sign_rps_c32: oneMemberSign,
  };
  // The same with HSM calls only (every request one signature in the token): the member's share of
  // the work has to move to the other two. Member b is back first; member c is killed this time.
  await victim.start();
  const second = fleet3.members[2] as P11KitFleet['members'][number];
  await new Promise((r) => setTimeout(r, 3000)); // b rejoins (probe period ≤ 1 s)
  let signKilledAt = -1;
  const signOnly = await mixedLoad(cluster, FAILOVER_SECONDS, 32, (s) => {
    if (s === KILL_AT_SECONDS && signKilledAt < 0) { signKilledAt = s * 1000; void second.kill(); }
  }, [MIXED[2]]);
  const signAfter = rate(signOnly, signKilledAt + 2000, FAILOVER_SECONDS * 1000);
  // The one-member figure with the same client (this loader is not autocannon), on hop-1, no kill.
  const oneMemberRun = await mixedLoad(targets[1] as Target, FAILOVER_SECONDS - KILL_AT_SECONDS, 32, () => undefined, [MIXED[2]]);
  const oneMemberSameClient = rate(oneMemberRun, 2000, (FAILOVER_SECONDS - KILL_AT_SECONDS) * 1000);
  const signFailover = {
    seconds: FAILOVER_SECONDS, killed_member: second.name, killed_at_s: signKilledAt / 1000, connections: 32,
    requests: signOnly.length, failed_requests: signOnly.filter((o) => !o.ok).length,
    rps_before_kill: Math.round(rate(signOnly, 2000, signKilledAt)),
    rps_after_kill: Math.round(signAfter),
    one_member_rps_same_client: Math.round(oneMemberSameClient),
    ratio_after_kill_to_one_member: Number((signAfter / oneMemberSameClient).toFixed(3)),
  };
  const health = await call(cluster.server.address, 'GET', '/v1/sys/health');
  const summary = { machine: { cpus: cpus().length, node: process.version }, seconds_per_run: SECONDS, rounds: ROUNDS, reference: 'direct (SoftHSM loaded in the server)', results, failover, hsm_sign_failover: signFailover, health_after_failover: health.body };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/fleet.json', JSON.stringify(summary, null, 2));
  console.log(JSON.stringify(summary, null, 2));
} finally {
  for (const s of servers) await s.stop();
  await fleet1?.stop();
  await fleet3?.stop();
}
