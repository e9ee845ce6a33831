/**
 * One HSMCluster's reconcile: discover the members from every source, probe each, write the healthy
 * ones into the ConfigMap (only when that changes its content), and report in status and Events.
 *
 * A source that fails (a command that exits non-zero or prints garbage, a DNS server that does not
 * answer) keeps its last good answer: a throttled cloud API must not empty the server's endpoint
 * set. Those endpoints are still probed every period, so a member that really went away leaves the
 * ConfigMap anyway; the failure shows as DiscoveryFailed and a Warning Event. An answer with no
 * endpoints (`[]`, NXDOMAIN) is an answer, and empties that source.
 */
import { ENDPOINTS_KEY, formatEndpointSet, sortEndpoints, type HsmEndpoint } from '../../hsm/endpoint-set.js';
import { PatchStrategy, setHeaderOptions, type V1ConfigMap } from '@kubernetes/client-node';
import { kubeMessage, kubeStatus } from '../../hsm/kube-watch.js';
import type { OperatorKube } from './kube.js';
import { setCondition, type Condition } from './conditions.js';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from './crd.js';
import { probeConnect, type ProbeResult } from './probe.js';
import { discover, type Discovered, type SourceOptions } from './sources.js';
import { parseSpec, sourceKey, type ClusterSpec } from './spec.js';

export interface Logger {
  debug?(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface HsmClusterObject {
  metadata: { name: string; namespace: string; uid: string; generation?: number; resourceVersion?: string };
  spec?: unknown;
  status?: { conditions?: Condition[] };
}

export interface Member extends HsmEndpoint {
  healthy: boolean;
  latencyMs: number;
  lastProbe: string;
  lastError?: string;
}

export interface ReconcileContext {
  kube: OperatorKube;
  log: Logger;
  sources: SourceOptions;
  defaults: { periodSeconds: number };
  /** Who writes the Events (reportingInstance): the pod name. */
  instance: string;
}

export function clusterPath(namespace: string, name?: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}${name ? `/${name}` : ''}`;
}

export class ClusterReconciler {
  /** The last good answer of each source (by its spec), see the module comment. */
  #lastGood = new Map<string, Discovered[]>();
  #lastMembers: Member[] = [];
  /** Warnings already reported as Events, so a failing source warns once per new message, not every period. */
  #warned = new Set<string>();
  spec: ClusterSpec | undefined;

  constructor(private readonly ctx: ReconcileContext) {}

  /** Reconciles `cluster` (as last read); returns the probe period to wait before the next run. */
  async reconcile(cluster: HsmClusterObject): Promise<number> {
    const { namespace, name } = cluster.metadata;
    const now = () => new Date().toISOString();
    const started = performance.now();
    const generation = cluster.metadata.generation;
    const previous = cluster.status?.conditions ?? [];
    let spec: ClusterSpec;
    try {
      spec = parseSpec(cluster.spec, this.ctx.defaults);
    } catch (err) {
      const message = (err as Error).message;
      if (!this.#warned.has(`InvalidSpec:${message}`)) await this.#event(cluster, 'Warning', 'InvalidSpec', message);
      this.#warned = new Set([`InvalidSpec:${message}`]);
      await this.#status(cluster, { conditions: [setCondition(previous, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message, ...(generation ? { observedGeneration: generation } : {}) }, now())] });
      return this.ctx.defaults.periodSeconds * 1000;
    }
    this.spec = spec;

    // Discovery: every source, concurrently.
    const live = new Set(spec.sources.map(sourceKey));
    for (const key of this.#lastGood.keys()) if (!live.has(key)) this.#lastGood.delete(key);
    const results = await Promise.all(spec.sources.map((s) => discover(s, this.ctx.sources)));
    const failures: { reason: string; message: string }[] = [];
    const candidates = new Map<string, Discovered>();
    results.forEach((result, i) => {
      const key = sourceKey(spec.sources[i]!);
      let endpoints: Discovered[];
      if (result.ok) {
        this.#lastGood.set(key, result.endpoints);
        endpoints = result.endpoints;
      } else {
        const kept = this.#lastGood.get(key) ?? [];
        failures.push({ reason: result.reason, message: `sources[${i}]: ${result.message}${kept.length ? ` (keeping its ${kept.length} endpoint(s) from the last good answer)` : ''}` });
        endpoints = kept;
      }
      // The first source naming a member wins.
      for (const e of endpoints) if (!candidates.has(e.name)) candidates.set(e.name, e);
    });

    // Probe every candidate, concurrently.
    const probed: Member[] = await Promise.all(sortEndpoints([...candidates.values()]).map(async ({ name: memberName, address, probeAddress }) => {
      const r: ProbeResult = await probeConnect(probeAddress ?? address, spec.probe.timeoutMs);
      return { name: memberName, address, healthy: r.healthy, latencyMs: r.latencyMs, lastProbe: now(), ...(r.error ? { lastError: r.error } : {}) };
    }));
    const healthy = probed.filter((m) => m.healthy).map(({ name: n, address }) => ({ name: n, address }));

    // The ConfigMap.
    let configMapProblem: { reason: string; message: string } | undefined;
    try {
      await this.#publish(cluster, spec.configMap, healthy);
    } catch (err) {
      const conflict = err instanceof ConfigMapConflict;
      configMapProblem = { reason: conflict ? 'ConfigMapConflict' : 'ConfigMapWriteFailed', message: (err as Error).message };
    }

    // Events on changes.
    const before = new Map(this.#lastMembers.filter((m) => m.healthy).map((m) => [m.name, m]));
    const after = new Map(healthy.map((m) => [m.name, m]));
    const joined = [...after.keys()].filter((n) => !before.has(n));
    const left = [...before.keys()].filter((n) => !after.has(n));
    if (!configMapProblem && (joined.length || left.length)) {
      const parts = [...(joined.length ? [`joined: ${joined.join(', ')}`] : []), ...(left.length ? [`left: ${left.map((n) => `${n} (${probed.find((m) => m.name === n)?.lastError ?? 'no longer discovered'})`).join(', ')}`] : [])];
      this.ctx.log.info({ cluster: `${namespace}/${name}`, joined, left }, 'HSM cluster membership changed');
      await this.#event(cluster, left.length ? 'Warning' : 'Normal', 'MembersChanged', `${parts.join('; ')}; ${healthy.length} healthy member(s) in ConfigMap ${spec.configMap}`);
    }
    this.#lastMembers = probed;
    const warnings = [...failures, ...(configMapProblem ? [configMapProblem] : [])];
    for (const w of warnings) {
      const key = `${w.reason}:${w.message}`;
      if (!this.#warned.has(key)) await this.#event(cluster, 'Warning', w.reason, w.message);
    }
    this.#warned = new Set(warnings.map((w) => `${w.reason}:${w.message}`));

    // Status.
    const t = now();
    const g = generation ? { observedGeneration: generation } : {};
    const unhealthy = probed.filter((m) => !m.healthy);
    const conditions: Condition[] = [
      setCondition(previous, configMapProblem
        ? { type: 'Ready', status: 'False', ...configMapProblem, ...g }
        : healthy.length
          ? { type: 'Ready', status: 'True', reason: 'MembersHealthy', message: `${healthy.length} of ${probed.length} member(s) healthy, in ConfigMap ${spec.configMap}`, ...g }
          : { type: 'Ready', status: 'False', reason: 'NoHealthyMembers', message: probed.length ? `none of ${probed.length} member(s) answers` : 'no member discovered', ...g }, t),
      setCondition(previous, unhealthy.length
        ? { type: 'Degraded', status: 'True', reason: 'MembersUnhealthy', message: unhealthy.map((m) => `${m.name}: ${m.lastError ?? 'unhealthy'}`).join('; '), ...g }
        : { type: 'Degraded', status: 'False', reason: 'AllMembersHealthy', message: `${probed.length} member(s) healthy`, ...g }, t),
      setCondition(previous, failures.length
        ? { type: 'DiscoveryFailed', status: 'True', reason: failures[0]!.reason, message: failures.map((f) => f.message).join('; '), ...g }
        : { type: 'DiscoveryFailed', status: 'False', reason: 'SourcesAnswered', message: `${spec.sources.length} source(s) answered`, ...g }, t),
    ];
    await this.#status(cluster, {
      ...g,
      lastProbeTime: t,
      healthyMembers: healthy.length,
      totalMembers: probed.length,
      members: probed,
      conditions,
    });
    this.ctx.log.debug?.({ cluster: `${namespace}/${name}`, healthy: healthy.length, members: probed.length, ms: Math.round(performance.now() - started) }, 'reconciled');
    return spec.probe.periodMs;
  }

  async #publish(cluster: HsmClusterObject, configMap: string, endpoints: HsmEndpoint[]): Promise<void> {
    const { namespace, name, uid } = cluster.metadata;
    const text = formatEndpointSet({ cluster: name, endpoints });
    const { core } = this.ctx.kube;
    let existing: V1ConfigMap | undefined;
    try {
      existing = await core.readNamespacedConfigMap({ namespace, name: configMap });
    } catch (err) {
      if (kubeStatus(err) !== 404) throw err;
    }
    const ownerReferences = [{ apiVersion: API_VERSION, kind: KIND, name, uid, controller: true }];
    const labels = { 'app.kubernetes.io/managed-by': 'keyhold-operator', 'keyhold.io/hsm-cluster': name };
    if (!existing) {
      await core.createNamespacedConfigMap({ namespace, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: configMap, namespace, labels, ownerReferences }, data: { [ENDPOINTS_KEY]: text } } });
      return;
    }
    // Never take over a ConfigMap someone else made (or another HSMCluster's).
    if (!existing.metadata?.ownerReferences?.some((o) => o.uid === uid)) {
      throw new ConfigMapConflict(`ConfigMap ${configMap} exists and is not owned by this HSMCluster: not overwriting it`);
    }
    if (existing.data?.[ENDPOINTS_KEY] === text) {
      return;
    }
    // A replace with the resourceVersion: a concurrent edit fails (409) and the next run retries.
    await core.replaceNamespacedConfigMap({ namespace, name: configMap, body: { ...existing, data: { ...existing.data, [ENDPOINTS_KEY]: text } } });
  }

  async #status(cluster: HsmClusterObject, status: Record<string, unknown>): Promise<void> {
    const { namespace, name } = cluster.metadata;
    try {
      await this.ctx.kube.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    } catch (err) {
      if (kubeStatus(err) !== 404) this.ctx.log.warn({ cluster: `${namespace}/${name}`, err: kubeMessage(err) }, 'could not update the HSMCluster status');
    }
  }

  /** A core/v1 Event on the HSMCluster. A failure to record one is logged, never fatal. */
  async #event(cluster: HsmClusterObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { namespace, name, uid } = cluster.metadata;
    const t = new Date();
    try {
      await this.ctx.kube.core.createNamespacedEvent({ namespace, body: {
        apiVersion: 'v1', kind: 'Event',
        metadata: { generateName: `${name}.`, namespace },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid },
        type, reason, message: message.slice(0, 1024),
        firstTimestamp: t, lastTimestamp: t, count: 1,
        source: { component: 'keyhold-operator' },
        reportingComponent: 'keyhold.io/operator', reportingInstance: this.ctx.instance,
      } });
    } catch (err) {
      this.ctx.log.warn({ cluster: `${namespace}/${name}`, reason, err: kubeMessage(err) }, 'could not record an Event');
    }
  }
}

class ConfigMapConflict extends Error {}
