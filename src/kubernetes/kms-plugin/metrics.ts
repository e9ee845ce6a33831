/** Prometheus metrics of the plugin, on a registry of its own (tests run several plugins in one process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KekEvents } from './local-kek.js';

export class KmsMetrics {
  readonly registry = new Registry();
  readonly calls: Counter<'method' | 'code'>;
  readonly latency: Histogram<'method'>;
  readonly kekEvents: KekEvents;

  constructor(sources: { rootCalls: () => number; healthy: () => Promise<boolean>; kekUses: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'keyhold_kms_' });
    this.calls = new Counter({ name: 'keyhold_kms_calls_total', help: 'KMS v2 calls by method and result code', labelNames: ['method', 'code'], registers });
    this.latency = new Histogram({
      name: 'keyhold_kms_call_duration_seconds', help: 'KMS v2 call latency by method', labelNames: ['method'], registers,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 3],
    });
    const hits = new Counter({ name: 'keyhold_kms_kek_cache_hits_total', help: 'Decrypts whose local KEK was already unwrapped', registers });
    const misses = new Counter({ name: 'keyhold_kms_kek_cache_misses_total', help: 'Decrypts that had to unwrap their local KEK through the root key', registers });
    const rotations = new Counter({ name: 'keyhold_kms_kek_rotations_total', help: 'New local KEKs by reason', labelNames: ['reason'], registers });
    const rotationFailures = new Counter({ name: 'keyhold_kms_kek_rotation_failures_total', help: 'Failed attempts to make a local KEK', labelNames: ['reason'], registers });
    new Gauge({ name: 'keyhold_kms_root_key_calls_total', help: 'Calls made to the HSM (direct mode) or keyhold server (server mode)', registers, collect() { this.set(sources.rootCalls()); } });
    new Gauge({ name: 'keyhold_kms_kek_uses', help: 'Encrypts done with the current local KEK', registers, collect() { this.set(sources.kekUses()); } });
    new Gauge({ name: 'keyhold_kms_healthy', help: '1 while Status reports ok', registers, async collect() { this.set((await sources.healthy()) ? 1 : 0); } });
    this.kekEvents = {
      cacheHit: () => hits.inc(),
      cacheMiss: () => misses.inc(),
      rotated: (reason) => rotations.inc({ reason }),
      rotationFailed: (reason) => rotationFailures.inc({ reason }),
    };
  }
}
