/**
 * Webhook latency at a fixed rate: AdmissionReview v1 requests for an annotated pod, sent over
 * HTTPS at 200 requests/s (open loop, as kube-apiserver sends them) for BENCH_SECONDS; p50/p99 of
 * the full round trip. Target: p99 < 5 ms at 200/s. Beside it, the same load against a bare HTTPS
 * server that parses the JSON and answers an empty AdmissionReview, for scale.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'node:https';
import { serveWebhook } from '../src/kubernetes/webhook/server.js';
import { fileTls } from '../src/kubernetes/webhook/tls.js';
import { makePki } from '../test/helpers/control-plane.js';
import { tempDir } from '../test/helpers/server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RATE = 200;
const quiet = { info: () => undefined, warn: () => undefined };

const pki = await makePki(tempDir('keyhold-webhook-bench-'));
const webhook = await serveWebhook({ listen: { host: '127.0.0.1', port: 0 }, tls: fileTls(pki.certFile, pki.keyFile), agentImage: 'keyhold:bench', serverAddress: 'https://keyhold:8200', log: quiet });
const { readFileSync } = await import('node:fs');
const bare = createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const review = JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string } };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } }));
  });
});
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
const bareUrl = `https://127.0.0.1:${(bare.address() as AddressInfo).port}`;

function review(): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: randomUUID(), kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'apps', operation: 'CREATE',
      object: {
        metadata: { name: 'web', annotations: { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-db': 'app/db#password', 'keyhold.io/secret-api': 'app/api#token', 'keyhold.io/refresh': 'true' } },
        spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: `registry.example/app@sha256:${'d'.repeat(64)}`, env: [{ name: 'X', value: 'y' }] }] },
      },
    },
  });
}

async function openLoop(url: string): Promise<{ p50: number; p99: number; max: number; errors: number; sent: number }> {
  // kube-apiserver keeps connections to a webhook alive; so does this client.
  const agent = new Agent({ keepAlive: true, maxSockets: 32, ca: pki.caPem });
  const latencies: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = Date.now();
  const total = RATE * SECONDS;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = review();
    const t = process.hrtime.bigint();
    inflight.push(new Promise<void>((resolve) => {
      const req = request(`${url}/mutate`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) errors++;
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          resolve();
        });
      });
      req.on('error', () => { errors++; resolve(); });
      req.end(body);
    }));
  }
  await Promise.all(inflight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => Number((latencies[Math.floor(latencies.length * p)] ?? 0).toFixed(2));
  return { p50: q(0.5), p99: q(0.99), max: Number((latencies.at(-1) ?? 0).toFixed(2)), errors, sent: total };
}

try {
  await openLoop(webhook.url); // warm-up (JIT, TLS sessions)
  const keyhold = await openLoop(webhook.url);
  const ceiling = await openLoop(bareUrl);
  const result = { rate_per_s: RATE, seconds: SECONDS, keyhold_webhook: keyhold, bare_https_json_server: ceiling, target_p99_ms: 5, verdict: keyhold.p99 < 5 && keyhold.errors === 0 ? 'meets' : 'MISSES' };
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/webhook.json', JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
} finally {
  await webhook.close();
  bare.close();
}
