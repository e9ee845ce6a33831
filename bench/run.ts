/**
 * keyhold's HTTP speed and memory as ratios against bare ceilings measured in the same run
 * (bench/ceiling-server.ts). Both servers are real child processes on loopback; the load comes
 * from this third process. Usage: npm run bench
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnUntilReady } from '../test/helpers/processes.js';
import { tempDir } from '../test/helpers/temp.js';
import { load, type LoadResult } from './load.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = resolve(here, '../src/cli/keyhold.cjs');
const CEILING = resolve(here, 'ceiling-server.js');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WRITE_CONNECTIONS = [8, 32, 128];

// The same libuv pool size keyhold's CLI sets for itself, so both sides dispatch HSM calls alike.
// keyhold runs as its executable (the launcher's shebang sets V8 flags, as in the Helm chart); the ceiling under plain node.
const startProcess = (args: string[], ready: RegExp) => args[0] === CLI
  ? spawnUntilReady(args.join(' '), CLI, args.slice(1), { ready, env: { UV_THREADPOOL_SIZE: '16' } })
  : spawnUntilReady(args.join(' '), process.execPath, args, { ready, env: { UV_THREADPOOL_SIZE: '16' } });

async function api(address: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(address + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

interface Scenario {
  name: string;
  /** The figure; 0 for rows that are information, not a target (4 KiB, writes). */
  target: number;
  ceiling: () => Promise<LoadResult>;
  keyhold: () => Promise<LoadResult>;
}

const work = tempDir('keyhold-bench-');
const keyholdProc = await startProcess([CLI, 'dev', '--data-dir', join(work, 'dev'), '--listen', '127.0.0.1:0'], /listening on (http:\/\/[\d.]+:\d+)/);
const ceilingProc = await startProcess([CEILING, mkdirOk(join(work, 'ceiling'))], /ceiling listening on (http:\/\/[\d.]+:\d+)/);
const kh = keyholdProc.ready[1] as string;
const ce = ceilingProc.ready[1] as string;
const token = readFileSync(join(work, 'dev', 'root-token'), 'utf8').trim();

function mkdirOk(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

try {
  // Idle RSS is the resting footprint: V8 keeps the young generation the start-up filled (16 MiB
  // semi-spaces) resident until its memory reducer runs, some 10-20 s into idleness. So the figure
  // is taken once the RSS has settled (two samples 5 s apart within 1 MB, at least 20 s after the
  // start), and the start-up figure and the curve are reported beside it.
  const idleCurve: Array<[seconds: number, mb: number]> = [];
  const pid = keyholdProc.child.pid as number;
  const idleFrom = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, idleCurve.length === 0 ? 1500 : 5000));
    idleCurve.push([Math.round((Date.now() - idleFrom) / 1000), Number(rssMb(pid).toFixed(1))]);
    const [last, before] = [idleCurve.at(-1), idleCurve.at(-2)];
    const settled = last && before && last[0] >= 20 && Math.abs(last[1] - before[1]) < 1;
    if (settled || idleCurve.length >= 13) break;
  }
  const startRss = idleCurve[0]?.[1] ?? 0;
  const idleRss = idleCurve.at(-1)?.[1] ?? 0;

  await api(kh, token, 'POST', '/v1/keys', { name: 'bench-wrapped', type: 'aes256-gcm', protection: 'wrapped' });
  await api(kh, token, 'POST', '/v1/keys', { name: 'bench-hsm', type: 'aes256-gcm', protection: 'hsm' });
  await api(kh, token, 'PUT', '/v1/secrets/bench/app', { data: { username: 'app', password: 'x'.repeat(32) } });
  const plaintext = Buffer.alloc(64, 7).toString('base64');
  const body = JSON.stringify({ plaintext });
  const body4k = JSON.stringify({ plaintext: Buffer.alloc(4096, 7).toString('base64') });
  const hsmCallsBefore = Number(/keyhold_hsm_calls_total (\d+)/.exec(await (await fetch(`${kh}/metrics`)).text())?.[1]);

  const scenarios: Scenario[] = [
    {
      name: 'wrapped-key encrypt (auth+policy+audit) vs bare Node AES-GCM route',
      target: 0.7,
      ceiling: () => load(`${ce}/encrypt-node`, { method: 'POST', body, seconds: SECONDS }),
      keyhold: () => load(`${kh}/v1/keys/bench-wrapped/encrypt`, { method: 'POST', body, token, seconds: SECONDS }),
    },
    {
      name: 'wrapped-key encrypt of 4 KiB (same, larger payload: the overhead is per request)',
      target: 0.7,
      ceiling: () => load(`${ce}/encrypt-node`, { method: 'POST', body: body4k, seconds: SECONDS }),
      keyhold: () => load(`${kh}/v1/keys/bench-wrapped/encrypt`, { method: 'POST', body: body4k, token, seconds: SECONDS }),
    },
    {
      name: 'hsm-key encrypt vs bare route with one SoftHSM AES-GCM call',
      target: 0.7,
      ceiling: () => load(`${ce}/encrypt-hsm`, { method: 'POST', body, seconds: SECONDS }),
      keyhold: () => load(`${kh}/v1/keys/bench-hsm/encrypt`, { method: 'POST', body, token, seconds: SECONDS }),
    },
    {
      name: 'secret read vs bare route decrypting one stored record',
      target: 0.7,
      ceiling: () => load(`${ce}/secret`, { seconds: SECONDS }),
      keyhold: () => load(`${kh}/v1/secrets/bench/app`, { token, seconds: SECONDS }),
    },
  ];

  // Writes: keyhold makes a request record durable before the handler, then the write, then the
  // outcome record (three group-committed syncs in a row); the ceiling one storage write and one
  // audit line. Group commit needs requests in flight to fill its batches, so this is a curve.
  const writeBody = JSON.stringify({ data: { username: 'app', password: 'x'.repeat(32) } });
  let written = 0;
  for (const connections of WRITE_CONNECTIONS) {
    scenarios.push({
      name: `secret write to a new path, ${connections} in flight (auth+policy+write-ahead and outcome audit records) vs bare sealed SQLite write + one audit line`,
      target: 0,
      ceiling: () => load(ce, { method: 'PUT', body: writeBody, seconds: SECONDS, connections, path: () => `/secret/c${written++}` }),
      keyhold: () => load(kh, { method: 'PUT', body: writeBody, token, seconds: SECONDS, connections, path: () => `/v1/secrets/bench/w${written++}` }),
    });
  }

  const results: Array<Record<string, unknown>> = [];
  for (const scenario of scenarios) {
    // Warm both (JIT, caches), then alternate rounds so drift hits both sides alike.
    await scenario.ceiling();
    await scenario.keyhold();
    const ceilings: LoadResult[] = [];
    const keyholds: LoadResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ceilings.push(await scenario.ceiling());
      keyholds.push(await scenario.keyhold());
    }
    const mean = (rs: LoadResult[]) => rs.reduce((sum, r) => sum + r.rps, 0) / rs.length;
    const bad = [...ceilings, ...keyholds].reduce((sum, r) => sum + r.non2xx + r.errors, 0);
    const ratio = mean(keyholds) / mean(ceilings);
    results.push({
      scenario: scenario.name, ceiling_rps: Math.round(mean(ceilings)), keyhold_rps: Math.round(mean(keyholds)), ratio: Number(ratio.toFixed(3)),
      keyhold_p99_ms: Math.max(...keyholds.map((r) => r.p99ms)), target: scenario.target, failed_requests: bad, verdict: scenario.target === 0 ? 'information' : ratio >= scenario.target && bad === 0 ? 'meets' : 'MISSES',
    });
  }
  const metrics = await (await fetch(`${kh}/metrics`)).text();
  const hsmCalls = Number(/keyhold_hsm_calls_total (\d+)/.exec(metrics)?.[1]) - hsmCallsBefore;
  const auditFlushes = Number(/keyhold_audit_flushes_total (\d+)/.exec(metrics)?.[1]);
  const loadedRss = rssMb(keyholdProc.child.pid as number);
  // The web console (on by default, so the idle figure above includes it): its bundle's gzipped
  // size (scripts/build.sh writes it), and what opening it once costs (helmet and @fastify/static
  // are loaded on the first /ui request only).
  const uiSize = JSON.parse(readFileSync(resolve(here, '../ui/size.json'), 'utf8')) as { js_bytes: number; js_gzip_bytes: number; css_gzip_bytes: number };
  for (const file of ['/ui/', '/ui/app.js', '/ui/app.css']) {
    const r = await fetch(kh + file);
    if (r.status !== 200) throw new Error(`console ${file}: ${r.status}`);
    await r.arrayBuffer();
  }
  const consoleOpenedRss = rssMb(keyholdProc.child.pid as number);
  const summary = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    seconds_per_run: SECONDS, rounds: ROUNDS, connections: 32,
    results,
    memory: { idle_rss_mb: Number(idleRss.toFixed(1)), rss_1_5s_after_start_mb: startRss, idle_curve_s_mb: idleCurve, target_mb: 120, verdict: idleRss < 120 ? 'meets' : 'MISSES', console_enabled: true, rss_after_load_mb: Number(loadedRss.toFixed(1)), rss_after_console_opened_mb: Number(consoleOpenedRss.toFixed(1)) },
    console: { js_bytes: uiSize.js_bytes, js_gzip_bytes: uiSize.js_gzip_bytes, css_gzip_bytes: uiSize.css_gzip_bytes, js_gzip_target_bytes: 60 * 1024, verdict: uiSize.js_gzip_bytes < 60 * 1024 ? 'meets' : 'MISSES' },
    counters: { hsm_calls_during_bench: hsmCalls, audit_flushes: auditFlushes },
  };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/http.json', JSON.stringify(summary, null, 2));
  console.log(JSON.stringify(summary, null, 2));
} finally {
  keyholdProc.child.kill('SIGTERM');
  ceilingProc.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(work, { recursive: true, force: true });
}
