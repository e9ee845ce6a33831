/** An HSMCluster's spec, checked and with defaults: what the reconciler works from. */
/* eslint-disable @typescript-eslint/no-explicit-any -- the spec as the API gives it is walked field by field and checked here */
import { checkEndpoints, type HsmEndpoint } from '../../hsm/endpoint-set.js';
import { CONFIGMAP_NAME } from './crd.js';

export type Source =
  | { kind: 'static'; endpoints: HsmEndpoint[] }
  | { kind: 'dns'; name: string; type: 'A' | 'AAAA' | 'SRV'; resolver?: string; port?: number; addressTemplate: string }
  | { kind: 'command'; command: string[]; timeoutMs: number };

export interface ClusterSpec {
  sources: Source[];
  probe: { periodMs: number; timeoutMs: number };
  configMap: string;
  nodeResource?: { nodeSelector: Record<string, string>; count: number };
}

export interface SpecDefaults {
  periodSeconds: number;
}

function int(value: unknown, min: number, max: number, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new Error(`${what} must be a whole number from ${min} to ${max}`);
  return value as number;
}

function parseSource(raw: unknown, i: number): Source {
  const where = `spec.sources[${i}]`;
  if (typeof raw !== 'object' || raw === null) throw new Error(`${where} is not an object`);
  const keys = Object.keys(raw);
  if (keys.length !== 1) throw new Error(`${where} must have exactly one of static, dns, command`);
  const r = raw as Record<string, any>;
  if (r.static) return { kind: 'static', endpoints: checkEndpoints(r.static.endpoints, `${where}.static.endpoints`) };
  if (r.dns) {
    const d = r.dns;
    if (typeof d.name !== 'string' || !d.name) throw new Error(`${where}.dns.name is missing`);
    if (!['A', 'AAAA', 'SRV'].includes(d.type)) throw new Error(`${where}.dns.type must be A, AAAA or SRV`);
    if (d.type !== 'SRV' && d.port === undefined) throw new Error(`${where}.dns.port is needed for ${d.type} records`);
    if (d.resolver !== undefined && typeof d.resolver !== 'string') throw new Error(`${where}.dns.resolver must be host:port`);
    return {
      kind: 'dns', name: d.name, type: d.type,
      ...(d.resolver ? { resolver: d.resolver } : {}),
      ...(d.port !== undefined ? { port: int(d.port, 1, 65535, 0, `${where}.dns.port`) } : {}),
      addressTemplate: typeof d.addressTemplate === 'string' && d.addressTemplate ? d.addressTemplate : '${host}:${port}',
    };
  }
  if (r.command) {
    const c = r.command;
    if (!Array.isArray(c.command) || c.command.length === 0 || !c.command.every((a: unknown) => typeof a === 'string')) throw new Error(`${where}.command.command must be a non-empty list of strings`);
    return { kind: 'command', command: c.command, timeoutMs: int(c.timeoutSeconds, 1, 300, 10, `${where}.command.timeoutSeconds`) * 1000 };
  }
  throw new Error(`${where} must have exactly one of static, dns, command`);
}

/** Throws an Error whose message names the bad field. */
export function parseSpec(raw: unknown, defaults: SpecDefaults): ClusterSpec {
  const spec = (raw ?? {}) as Record<string, any>;
  if (!Array.isArray(spec.sources) || spec.sources.length === 0) throw new Error('spec.sources must list at least one source');
  const name = spec.configMap?.name;
  if (typeof name !== 'string' || !CONFIGMAP_NAME.test(name)) throw new Error('spec.configMap.name must be a ConfigMap name');
  const periodMs = int(spec.probe?.periodSeconds, 1, 3600, defaults.periodSeconds, 'spec.probe.periodSeconds') * 1000;
  // A probe may not outlast its period, or probes would pile up.
  const timeoutMs = Math.min(int(spec.probe?.timeoutSeconds, 1, 60, 2, 'spec.probe.timeoutSeconds') * 1000, periodMs);
  const nr = spec.nodeResource;
  let nodeResource: ClusterSpec['nodeResource'];
  if (nr !== undefined) {
    const sel = nr.nodeSelector;
    if (typeof sel !== 'object' || sel === null || Object.keys(sel).length === 0 || !Object.values(sel).every((v) => typeof v === 'string')) {
      throw new Error('spec.nodeResource.nodeSelector must map label names to values');
    }
    nodeResource = { nodeSelector: sel, count: int(nr.count, 1, 64, 1, 'spec.nodeResource.count') };
  }
  return { sources: spec.sources.map(parseSource), probe: { periodMs, timeoutMs }, configMap: name, ...(nodeResource ? { nodeResource } : {}) };
}

/** A stable key for a source, so its last good answer is kept across reconciles of an unchanged spec. */
export function sourceKey(source: Source): string {
  return JSON.stringify(source);
}
