/**
 * What replicas cost: secret writes, secret reads and encrypt, on 1 keyhold over SQLite (the
 * reference, measured in the same run), 1 replica over PostgreSQL and 3 replicas over the same
 * PostgreSQL (load spread evenly over them). On a 2-core machine three replicas cannot be faster
 * than one: the ratios say what sharing state through PostgreSQL (a network round trip per storage
 * call, a change-feed round trip per request) and more processes cost.
 * Usage: node dist/bench/replicas.js (scripts/bench.sh runs it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { call, startDev, type DevServer } from '../test/helpers/server.js';
import { startReplicas, type ReplicaSet } from '../test/helpers/replicas.js';
import { load, type LoadResult } from './load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WRITE_CONNECTIONS = [8, 32, 128];
const READ_CONNECTIONS = [8, 32];

interface Target {
  name: string;
  addresses: string[];
  token: string;
}

async function prepare(t: Target): Promise<void> {
  const first = t.addresses[0] as string;
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await call(first, method, path, t.token, body);
    if (r.status >= 300) throw new Error(`${t.name}: ${method} ${path}: ${r.status} ${r.text}`);
  };
  await ok('POST', '/v1/keys', { name: 'bench-wrapped', type: 'aes256-gcm', protection: 'wrapped' });
  await ok('PUT', '/v1/secrets/bench/app', { data: { username: 'app', password: 'x'.repeat(32) } });
}

let written = 0;
const writeBody = JSON.stringify({ data: { username: 'app', password: 'x'.repeat(32) } });
const encryptBody = JSON.stringify({ plaintext: Buffer.alloc(64, 7).toString('base64') });

/** The same total number of connections, split evenly over the target's replicas. */
async function spread(t: Target, connections: number, one: (address: string, connections: number) => Promise<LoadResult>): Promise<LoadResult> {
  const share = Math.max(1, Math.round(connections / t.addresses.length));
  const results = await Promise.all(t.addresses.map((a) => one(a, share)));
  return {
    rps: results.reduce((s, r) => s + r.rps, 0),
    p99ms: Math.max(...results.map((r) => r.p99ms)),
    non2xx: results.reduce((s, r) => s + r.non2xx, 0),
    errors: results.reduce((s, r) => s + r.errors, 0),
  };
}

const scenarios: Array<{ name: string; connections: number; run: (t: Target) => Promise<LoadResult> }> = [
  ...WRITE_CONNECTIONS.map((connections) => ({
    name: 'secret write (new path)', connections,
    run: (t: Target) => spread(t, connections, (a, c) => load(a, { method: 'PUT', body: writeBody, token: t.token, seconds: SECONDS, connections: c, path: () => `/v1/secrets/bench/w${written++}` })),
  })),
  ...READ_CONNECTIONS.map((connections) => ({
    name: 'secret read', connections,
    run: (t: Target) => spread(t, connections, (a, c) => load(`${a}/v1/secrets/bench/app`, { token: t.token, seconds: SECONDS, connections: c })),
  })),
  ...READ_CONNECTIONS.map((connections) => ({
    name: 'wrapped-key encrypt, 64 B', connections,
    run: (t: Target) => spread(t, connections, (a, c) => load(`${a}/v1/keys/bench-wrapped/encrypt`, { method: 'POST', body: encryptBody, token: t.token, seconds: SECONDS, connections: c })),
  })),
];

let sqlite: DevServer | undefined;
let single: ReplicaSet | undefined;
let triple: ReplicaSet | undefined;
try {
  sqlite = await startDev();
  single = await startReplicas(1);
  // A second database on its own PostgreSQL: the two PostgreSQL targets do not share tables or caches.
  triple = await startReplicas(3);
  const targets: Target[] = [
    { name: 'sqlite-1', addresses: [sqlite.address], token: sqlite.rootToken },
    { name: 'postgres-1', addresses: single.replicas.map((r) => r.address), token: single.rootToken },
    { name: 'postgres-3', addresses: triple.replicas.map((r) => r.address), token: triple.rootToken },
  ];
  for (const t of targets) await prepare(t);
  // All three stay up throughout, so every target is measured on the same machine state.
  const results: Array<Record<string, unknown>> = [];
  for (const s of scenarios) {
    for (const t of targets) await s.run(t); // warm-up (JIT, caches, pools)
    const runs = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    // Rounds alternate between targets so that drift hits all alike.
    for (let round = 0; round < ROUNDS; round++) for (const t of targets) runs.get(t.name)?.push(await s.run(t));
    const mean = (name: string) => { const rs = runs.get(name) as LoadResult[]; return rs.reduce((sum, r) => sum + r.rps, 0) / rs.length; };
    const base = mean('sqlite-1');
    results.push({
      scenario: s.name, connections: s.connections,
      sqlite_1_rps: Math.round(base),
      postgres_1_rps: Math.round(mean('postgres-1')), postgres_1_ratio: Number((mean('postgres-1') / base).toFixed(3)),
      postgres_3_rps: Math.round(mean('postgres-3')), postgres_3_ratio: Number((mean('postgres-3') / base).toFixed(3)),
      p99_ms: Object.fromEntries(targets.map((t) => [t.name, Math.max(...(runs.get(t.name) as LoadResult[]).map((r) => r.p99ms))])),
      failed_requests: Object.fromEntries(targets.map((t) => [t.name, (runs.get(t.name) as LoadResult[]).reduce((sum, r) => sum + r.non2xx + r.errors, 0)])),
    });
  }
  const summary = { machine: { cpus: cpus().length, node: process.version }, seconds_per_run: SECONDS, rounds: ROUNDS, reference: 'sqlite-1 (keyhold dev, one process)', results };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/replicas.json', JSON.stringify(summary, null, 2));
  console.log(JSON.stringify(summary, null, 2));
} finally {
  await sqlite?.stop();
  await single?.destroy();
  await triple?.destroy();
}
