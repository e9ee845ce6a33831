/**
 * Start-up storm: 1,000 pods (real Pod objects in a real kube-apiserver, each with its own
 * pod-bound TokenRequest token, all running a cosign-signed image) each log in and read 5 secrets,
 * 32 at a time. keyhold (`keyhold dev`, role with an image policy) against a bare ceiling doing only
 * JWT verification and one record decryption per secret, alternating rounds. Also: login p99 with
 * image verification cached, and kube-apiserver calls per login (from the apiserver's own metrics:
 * 0 once keyhold's pod and service-account watches hold the pods, which they do before the storm).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { configureKubernetesLogin, serviceAccountToken } from '../test/helpers/kubernetes-login.js';
import { spawnUntilReady } from '../test/helpers/processes.js';
import { inParallel } from '../test/helpers/pool.js';
import { cosignKeyPair, cosignSign, pushImage, startRegistry } from '../test/helpers/registry.js';
import { call, startDev, tempDir } from '../test/helpers/server.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const PODS = Number(process.env.STORM_PODS ?? 1000);
const CONCURRENCY = 32;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

const cp = await startControlPlane();
const registry = await startRegistry();
const dev = await startDev(tempDir('keyhold-storm-'));
let ceiling: ChildProcess | undefined;
try {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'storm' } } });
  await core.createNamespacedServiceAccount({ namespace: 'storm', body: { metadata: { name: 'app' } } });

  const key = await cosignKeyPair(tempDir('keyhold-storm-cosign-'));
  const image = await pushImage(registry, 'storm/app', 'v1');
  await cosignSign(image.reference, key);

  const asRoot = (method: string, path: string, body?: unknown) => call(dev.address, method, path, dev.rootToken, body);
  await configureKubernetesLogin(cp, dev);
  await asRoot('PUT', '/v1/policies/storm', { rules: [{ path: 'secrets/storm/*', capabilities: ['read'] }] });
  await asRoot('PUT', '/v1/auth/kubernetes/roles/storm', { bound_namespaces: ['storm'], bound_service_accounts: ['app'], policies: ['storm'], image_policy: { trusted_keys_pem: [key.publicKeyPem], insecure_registries: [registry.host] } });
  for (let i = 0; i < 5; i++) await asRoot('PUT', `/v1/secrets/storm/s${i}`, { data: { value: `v${i}` } });

  process.stderr.write(`storm: creating ${PODS} pods and their tokens\n`);
  const jwts: string[] = new Array<string>(PODS);
  await inParallel(Array.from({ length: PODS }, (_, i) => i), 16, async (i) => {
    const pod = await core.createNamespacedPod({ namespace: 'storm', body: { metadata: { name: `p-${i}` }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: image.reference }] } } });
    jwts[i] = await serviceAccountToken(core, { namespace: 'storm', name: 'app' }, { pod, expirationSeconds: 3600 });
  });

  const jwks = (await cp.rawGet('/openid/v1/jwks')).body;
  const ceilingProc = await spawnUntilReady('login ceiling', process.execPath, [resolve(here, 'login-ceiling-server.js'), tempDir('keyhold-storm-ceiling-'), cp.url], { env: { CEILING_JWKS: jwks }, ready: /listening on (\S+)/ });
  ceiling = ceilingProc.child;
  const ceilingUrl = ceilingProc.ready[1] as string;

  const apiserverGets = async () => {
    const text = (await cp.rawGet('/metrics')).body;
    let total = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith('apiserver_request_total{')) continue;
      if (/resource="(pods|serviceaccounts)"/.test(line) && /verb="GET"/.test(line) && /scope="resource"/.test(line)) total += Number(line.split(' ').pop());
    }
    return total;
  };

  const storm = async (target: 'keyhold' | 'ceiling') => {
    const loginLatencies: number[] = [];
    let failures = 0;
    const started = Date.now();
    await inParallel(jwts, CONCURRENCY, async (jwt) => {
      const t = process.hrtime.bigint();
      const login = target === 'keyhold'
        ? await call(dev.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role: 'storm', jwt })
        : await call(ceilingUrl, 'POST', '/login', undefined, { jwt });
      loginLatencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (login.status !== 200) { failures++; return; }
      for (let s = 0; s < 5; s++) {
        const r = target === 'keyhold' ? await call(dev.address, 'GET', `/v1/secrets/storm/s${s}`, login.body.token) : await call(ceilingUrl, 'GET', `/secret/s${s}`);
        if (r.status !== 200) failures++;
      }
    });
    const seconds = (Date.now() - started) / 1000;
    loginLatencies.sort((a, b) => a - b);
    return { pods_per_s: PODS / seconds, login_p50_ms: loginLatencies[Math.floor(PODS / 2)] ?? 0, login_p99_ms: loginLatencies[Math.floor(PODS * 0.99)] ?? 0, failures };
  };

  // Login latency without the storm's queueing: one login at a time, after one login has filled
  // the image-verdict and JWKS caches ("with image verification cached").
  const warm = await call(dev.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role: 'storm', jwt: jwts[0] });
  if (warm.status !== 200) throw new Error(`warm-up login: ${warm.status} ${warm.text}`);
  const sequential: number[] = [];
  for (const jwt of jwts.slice(1, Math.min(201, PODS))) {
    const t = process.hrtime.bigint();
    const r = await call(dev.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role: 'storm', jwt });
    if (r.status !== 200) throw new Error(`sequential login: ${r.status} ${r.text}`);
    sequential.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  sequential.sort((a, b) => a - b);

  const keyholdRuns = [];
  const ceilingRuns = [];
  const getsBefore = await apiserverGets();
  for (let round = 0; round < ROUNDS; round++) {
    ceilingRuns.push(await storm('ceiling'));
    keyholdRuns.push(await storm('keyhold'));
  }
  const getsPerLogin = (await apiserverGets() - getsBefore) / (PODS * ROUNDS);
  const mean = (rs: Array<{ pods_per_s: number }>) => rs.reduce((s, r) => s + r.pods_per_s, 0) / rs.length;
  const ratio = mean(keyholdRuns) / mean(ceilingRuns);
  const p99 = Math.max(...keyholdRuns.map((r) => r.login_p99_ms));
  // The < 20 ms login target is judged on logins one at a time (caches warm). Inside the storm, 32
  // clients share 2 cores with kube-apiserver, etcd and this bench, so a login's p99 is mostly its
  // wait behind the other 31; the ceiling's storm p99 is printed beside keyhold's to show that.
  const sequentialP99 = sequential[Math.floor(sequential.length * 0.99)] ?? 0;
  const failures = [...keyholdRuns, ...ceilingRuns].reduce((s, r) => s + r.failures, 0);
  const result = {
    pods: PODS, concurrency: CONCURRENCY, rounds: ROUNDS,
    ceiling_pods_per_s: Number(mean(ceilingRuns).toFixed(1)), keyhold_pods_per_s: Number(mean(keyholdRuns).toFixed(1)), ratio: Number(ratio.toFixed(3)), target_ratio: 0.6,
    keyhold_login_one_at_a_time_p50_ms: Number((sequential[Math.floor(sequential.length / 2)] ?? 0).toFixed(2)),
    keyhold_login_one_at_a_time_p99_ms: Number(sequentialP99.toFixed(2)), target_login_p99_ms: 20,
    keyhold_storm_login_p50_ms: Number(Math.max(...keyholdRuns.map((r) => r.login_p50_ms)).toFixed(2)), keyhold_storm_login_p99_ms: Number(p99.toFixed(2)),
    ceiling_storm_login_p99_ms: Number(Math.max(...ceilingRuns.map((r) => r.login_p99_ms)).toFixed(2)),
    apiserver_gets_per_login: Number(getsPerLogin.toFixed(2)),
    failures,
    verdict: ratio >= 0.6 && sequentialP99 < 20 && failures === 0 ? 'meets' : 'MISSES',
  };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/login-storm.json', JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
} finally {
  ceiling?.kill('SIGTERM');
  await dev.stop();
  await registry.stop();
  await cp.stop();
}
