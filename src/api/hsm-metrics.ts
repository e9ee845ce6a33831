import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { HsmPool } from '../hsm/pool.js';
import type { Hsm } from '../hsm/types.js';

/**
 * Per-member HSM metrics: state and failures read from the pool's health at scrape time; call
 * latency and failovers told by the pool as they happen (label children resolved once per member).
 */
export function installHsmMemberMetrics(registry: Registry, hsm: Hsm): void {
  new Gauge({
    name: 'keyhold_hsm_member_up', help: '1 while the HSM member takes calls (breaker closed)', labelNames: ['member'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const m of (await hsm.health()).members ?? []) this.labels(m.name).set(m.state === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'keyhold_hsm_member_failures_total', help: 'Failures counted against the HSM member (device gone, transport errors)', labelNames: ['member'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const m of (await hsm.health()).members ?? []) this.labels(m.name).set(m.failures);
    },
  });
  new Gauge({
    name: 'keyhold_hsm_member_in_flight', help: 'Calls in flight on the HSM member', labelNames: ['member'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const m of (await hsm.health()).members ?? []) this.labels(m.name).set(m.inFlight);
    },
  });
  if (!(hsm instanceof HsmPool)) return;
  const seconds = new Histogram({
    name: 'keyhold_hsm_call_seconds', help: 'HSM call latency by member', labelNames: ['member'] as const, registers: [registry],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1],
  });
  const failovers = new Counter({ name: 'keyhold_hsm_failovers_total', help: 'Calls retried on another HSM member after theirs was gone', labelNames: ['from'] as const, registers: [registry] });
  const children = new Map<string, { observe(value: number): void }>();
  hsm.setObserver({
    call(member, value) {
      let child = children.get(member);
      if (!child) children.set(member, (child = seconds.labels(member)));
      child.observe(value);
    },
    failover(from) {
      failovers.labels(from).inc();
    },
  });
}
