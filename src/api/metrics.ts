import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Runtime } from '../core/runtime.js';
import { installHsmMemberMetrics } from './hsm-metrics.js';

/** Prometheus metrics on a registry of this server's own (tests run several servers in one process). */
/** Registers GET /metrics and returns the per-response observer that server.ts calls from its one onSend hook. */
export function installMetrics(app: FastifyInstance, runtime: Runtime): (request: FastifyRequest, reply: FastifyReply) => void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'keyhold_' });
  const requests = new Counter({ name: 'keyhold_http_requests_total', help: 'HTTP requests by operation and status', labelNames: ['operation', 'status'] as const, registers: [registry] });
  const latency = new Histogram({
    name: 'keyhold_http_request_duration_seconds', help: 'HTTP request latency by operation', labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry],
  });
  new Gauge({ name: 'keyhold_hsm_calls_total', help: 'Cryptographic calls made on the HSM', registers: [registry], collect() { this.set(runtime.hsm.callCount); } });
  new Gauge({ name: 'keyhold_hsm_up', help: '1 when the last (cached) HSM probe succeeded', registers: [registry], async collect() { this.set((await runtime.hsm.health()).ok ? 1 : 0); } });
  installHsmMemberMetrics(registry, runtime.hsm);
  new Gauge({ name: 'keyhold_audit_up', help: '1 while the audit log is writable', registers: [registry], collect() { this.set(runtime.audit.healthy ? 1 : 0); } });
  new Gauge({ name: 'keyhold_leader', help: '1 while this replica leads (runs the background jobs)', registers: [registry], collect() { this.set(runtime.leadership.isLeader ? 1 : 0); } });
  new Gauge({ name: 'keyhold_leader_elections_total', help: 'Times this replica became leader', registers: [registry], collect() { this.set(runtime.jobs.elections); } });
  new Gauge({ name: 'keyhold_root_key_generation', help: 'Generation of the root key new writes use', registers: [registry], collect() { if (!runtime.barrier.sealed) this.set(runtime.barrier.generation); } });
  new Gauge({ name: 'keyhold_root_rotation_in_progress', help: '1 while records are being rewritten under a new root key', registers: [registry], collect() { this.set(runtime.rootRotation.inProgress ? 1 : 0); } });
  new Gauge({ name: 'keyhold_root_rotation_records_rewritten_total', help: 'Barrier records this process rewrote under a new root key', registers: [registry], collect() { this.set(runtime.rootRotation.rewrittenTotal); } });
  new Gauge({ name: 'keyhold_audit_flushes_total', help: 'Group-commit flushes (write + fdatasync) of the audit log', registers: [registry], collect() { this.set(runtime.audit.flushes); } });

  // Label children resolved once per (operation, status): prom-client hashes label objects on every call otherwise.
  const counters = new Map<string, { inc(): void }>();
  const histograms = new Map<string, { observe(value: number): void }>();
  const observe = (request: FastifyRequest, reply: FastifyReply): void => {
    const operation = request.keyhold?.route.operation ?? 'unmatched';
    const key = `${operation} ${reply.statusCode}`;
    let counter = counters.get(key);
    if (!counter) counters.set(key, (counter = requests.labels(operation, String(reply.statusCode))));
    counter.inc();
    let histogram = histograms.get(operation);
    if (!histogram) histograms.set(operation, (histogram = latency.labels(operation)));
    histogram.observe(reply.elapsedTime / 1000);
  };

  app.get('/metrics', { schema: { hide: true }, config: { public: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return observe;
}
