/**
 * Operator logins per second (password + TOTP → token, with lockout state, replay record, token
 * and audit) against a ceiling measured in the same run: a bare fastify server doing the same
 * scrypt verification and TOTP check per request (bench/operator-login-ceiling-server.ts), at a
 * few concurrencies. Both are real child processes on loopback; the load comes from this process.
 *
 * A TOTP code is accepted once per account and time step, so keyhold's logins spread over many
 * enrolled accounts, each used at most once per step. Output: .bench-out/login.json.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { timeStepAt, totpCodeAt } from '../src/operators/totp.js';
import { spawnUntilReady } from '../test/helpers/processes.js';
import { tempDir } from '../test/helpers/temp.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = resolve(here, '../src/cli/keyhold.cjs');
const CEILING = resolve(here, 'operator-login-ceiling-server.js');
const CONCURRENCY = [1, 4, 16];
const LOGINS_PER_RUN = Number(process.env.BENCH_LOGINS ?? 40);
const PASSWORD = 'bench password for operators';

async function api(address: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(address + path, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? undefined : response.json();
}

interface Account { name: string; secret: string; lastStep: number }

/** The next login body of an account whose code for now or the next step is unused, or undefined. */
async function nextLogin(accounts: Account[]): Promise<{ username: string; password: string; totp: string } | undefined> {
  const now = Date.now();
  const current = timeStepAt(now);
  for (const a of accounts) {
    for (const step of [current, current + 1]) {
      if (step > a.lastStep) {
        a.lastStep = step;
        return { username: a.name, password: PASSWORD, totp: await totpCodeAt(a.secret, step * 30_000 + 1000) };
      }
    }
  }
  return undefined;
}

interface RunResult { logins_per_s: number; p50_ms: number; p99_ms: number; failed: number; failures?: Record<string, number> }

/** `total` logins, `concurrency` at a time, each worker sending its next one when the last is answered. */
async function run(url: string, concurrency: number, total: number, body: () => Promise<object | undefined>): Promise<RunResult> {
  const latencies: number[] = [];
  let failed = 0;
  // What each failure was (status and error code), so a failed login in a figure can be explained.
  const failures: Record<string, number> = {};
  let sent = 0;
  const started = performance.now();
  const worker = async () => {
    while (sent < total) {
      sent++;
      const b = await body();
      if (!b) throw new Error('no enrolled account has an unused TOTP step left: raise the account count');
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      const text = await res.text();
      latencies.push(performance.now() - t0);
      if (res.status !== 200) {
        failed++;
        let code = '';
        try { code = String((JSON.parse(text) as { error?: { code?: string } }).error?.code ?? ''); } catch { /* not JSON */ }
        const key = `${res.status} ${code}`.trim();
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(1));
  return { logins_per_s: Number((latencies.length / seconds).toFixed(2)), p50_ms: at(0.5), p99_ms: at(0.99), failed, ...(failed > 0 ? { failures } : {}) };
}

const work = tempDir('keyhold-bench-login-');
const keyholdProc = await spawnUntilReady('keyhold dev', CLI, ['dev', '--data-dir', join(work, 'dev'), '--listen', '127.0.0.1:0'], { ready: /listening on (http:\/\/[\d.]+:\d+)/, env: { UV_THREADPOOL_SIZE: '16' } });
let ceilingProc: Awaited<ReturnType<typeof spawnUntilReady>> | undefined;
try {
  const kh = keyholdProc.ready[1] as string;
  const root = readFileSync(join(work, 'dev', 'root-token'), 'utf8').trim();
  // Enough accounts for every login of the run to have its own (account, step).
  const count = Math.ceil((LOGINS_PER_RUN * CONCURRENCY.length + LOGINS_PER_RUN) / 2) + 4;
  const accounts: Account[] = [];
  await api(kh, root, 'PUT', '/v1/policies/bench', { rules: [{ path: 'keys/*', capabilities: ['read'] }] });
  const names = Array.from({ length: count }, (_, i) => `bench${String(i).padStart(4, '0')}`);
  await api(kh, root, 'PUT', '/v1/sys/groups/bench', { policies: ['bench'], members: names, external_groups: [] });
  for (const name of names) {
    await api(kh, root, 'POST', '/v1/sys/operators', { name, password: PASSWORD });
    const { otpauth_uri: uri } = await api(kh, undefined, 'POST', '/v1/auth/operator/enrol', { username: name, password: PASSWORD });
    const secret = new URL(uri as string).searchParams.get('secret') as string;
    const step = timeStepAt(Date.now()) - 1;
    await api(kh, undefined, 'POST', '/v1/auth/operator/enrol/confirm', { username: name, password: PASSWORD, code: await totpCodeAt(secret, step * 30_000 + 1000) });
    accounts.push({ name, secret, lastStep: step });
  }
  const first = accounts[0] as Account;
  ceilingProc = await spawnUntilReady('ceiling', process.execPath, [CEILING], { ready: /ceiling listening on (http:\/\/[\d.]+:\d+)/, env: { UV_THREADPOOL_SIZE: '16', CEILING_PASSWORD: PASSWORD, CEILING_TOTP_SECRET: first.secret } });
  const ce = ceilingProc.ready[1] as string;
  const ceilingBody = async () => ({ password: PASSWORD, totp: await totpCodeAt(first.secret) });

  const results = [];
  for (const concurrency of CONCURRENCY) {
    const ceiling = await run(`${ce}/login`, concurrency, LOGINS_PER_RUN, ceilingBody);
    const keyhold = await run(`${kh}/v1/auth/operator/login`, concurrency, LOGINS_PER_RUN, () => nextLogin(accounts));
    results.push({ concurrency, ceiling, keyhold, ratio: Number((keyhold.logins_per_s / ceiling.logins_per_s).toFixed(3)) });
  }
  const summary = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    logins_per_run: LOGINS_PER_RUN,
    what: 'operator login (scrypt N=2^15 r=8 p=3 + TOTP, lockout and replay record, token, two audit records) vs a bare fastify route with the same scrypt verify + TOTP check',
    results,
  };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/login.json', JSON.stringify(summary, null, 2));
  console.log(JSON.stringify(summary, null, 2));
} finally {
  keyholdProc.child.kill('SIGTERM');
  ceilingProc?.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(work, { recursive: true, force: true });
}
