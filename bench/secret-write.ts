/**
 * Secret writes through a real `keyhold dev`: each PUT creates a new secret (unique path), so the
 * figure is what a write costs with its audit records (write-ahead request record + response
 * record). Prints requests/s, latency, audit flushes and audit bytes per write.
 * Usage: node dist/bench/secret-write.js   (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS)
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startDev, tempDir } from '../test/helpers/server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

const dataDir = tempDir('keyhold-bench-write-');
const server = await startDev(dataDir);
const flushes = async () => Number(/keyhold_audit_flushes_total (\d+)/.exec(await (await fetch(`${server.address}/metrics`)).text())?.[1]);
try {
  let n = 0;
  const body = JSON.stringify({ data: { username: 'app', password: 'x'.repeat(32) } });
  const run = () => autocannon({
    url: server.address,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [{
      method: 'PUT',
      headers: { authorization: `Bearer ${server.rootToken}`, 'content-type': 'application/json' },
      body,
      setupRequest: (req) => ({ ...req, path: `/v1/secrets/bench/w${n++}` }),
    }],
  });
  await run(); // warm-up
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const bytesBefore = statSync(join(dataDir, 'audit.log')).size;
    const flushesBefore = await flushes();
    const r = await run();
    const writes = r.requests.total;
    rounds.push({
      rps: Math.round(r.requests.average), p50_ms: r.latency.p50, p99_ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors,
      audit_bytes_per_write: Math.round((statSync(join(dataDir, 'audit.log')).size - bytesBefore) / writes),
      writes_per_flush: Number((writes / ((await flushes()) - flushesBefore)).toFixed(1)),
    });
  }
  console.log(JSON.stringify({ seconds: SECONDS, connections: CONNECTIONS, rounds }, null, 2));
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
