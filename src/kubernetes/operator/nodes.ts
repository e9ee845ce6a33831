/**
 * Nodes with a local HSM (the Bank-Vaults case: a USB or PCIe HSM in one node): the extended
 * resource keyhold.io/hsm in the node's status capacity and allocatable, so that a pod needing the
 * device requests `keyhold.io/hsm: 1` and is scheduled only there. A node is marked by the label
 * (`keyhold.io/hsm`: "true" is one unit, a number that many) or by an HSMCluster's
 * spec.nodeResource selector; the most units any mark gives wins. When no mark is left the
 * resource is removed. Written with a JSON patch on the nodes/status subresource, as the
 * Kubernetes documentation advertises extended resources; the kubelet keeps such entries.
 */
import { kubeMessage } from '../../hsm/kube-watch.js';
import type { OperatorKube } from './kube.js';
import { HSM_RESOURCE } from './crd.js';
import type { Logger } from './reconciler.js';

export interface NodeMark {
  nodeSelector: Record<string, string>;
  count: number;
}

export interface NodeObject {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { capacity?: Record<string, string>; allocatable?: Record<string, string> };
}

const MAX_UNITS = 64;
/** `~1` is JSON Pointer for `/`. */
const POINTER = HSM_RESOURCE.replace(/~/g, '~0').replace(/\//g, '~1');

/** Units the label gives: "true" → 1, "1".."64" → that many, anything else → 0. */
export function unitsFromLabel(value: string | undefined): number {
  if (value === undefined) return 0;
  if (value === 'true') return 1;
  return /^[1-9]\d?$/.test(value) && Number(value) <= MAX_UNITS ? Number(value) : 0;
}

export function desiredUnits(node: NodeObject, label: string, marks: readonly NodeMark[]): number {
  const labels = node.metadata.labels ?? {};
  let units = unitsFromLabel(labels[label]);
  for (const m of marks) {
    if (Object.entries(m.nodeSelector).every(([k, v]) => labels[k] === v)) units = Math.max(units, m.count);
  }
  return units;
}

/** The JSON patch bringing `node` to `units` (0: removed), or undefined when it is there already. */
export function capacityPatch(node: NodeObject, units: number): object[] | undefined {
  const want = units > 0 ? String(units) : undefined;
  const ops: object[] = [];
  if (!node.status) ops.push({ op: 'add', path: '/status', value: {} });
  for (const field of ['capacity', 'allocatable'] as const) {
    const map = node.status?.[field];
    const have = map?.[HSM_RESOURCE];
    if (have === want) continue;
    if (want === undefined) {
      ops.push({ op: 'remove', path: `/status/${field}/${POINTER}` });
    } else {
      if (!map) ops.push({ op: 'add', path: `/status/${field}`, value: {} });
      ops.push({ op: 'add', path: `/status/${field}/${POINTER}`, value: want });
    }
  }
  return ops.length && !(ops.length === 1 && (ops[0] as { path: string }).path === '/status') ? ops : undefined;
}

export class NodeAdvertiser {
  readonly #nodes = new Map<string, NodeObject>();

  constructor(private readonly kube: OperatorKube, private readonly label: string, private readonly marks: () => NodeMark[], private readonly log: Logger) {}

  /** A node seen in a list or watch event. */
  async observe(node: NodeObject): Promise<void> {
    this.#nodes.set(node.metadata.name, node);
    await this.#sync(node);
  }

  forget(name: string): void {
    this.#nodes.delete(name);
  }

  replaceAll(nodes: NodeObject[]): void {
    this.#nodes.clear();
    for (const n of nodes) this.#nodes.set(n.metadata.name, n);
  }

  /** Every known node again (the marks of the HSMClusters changed, or a periodic resync). */
  async syncAll(): Promise<void> {
    for (const node of [...this.#nodes.values()]) await this.#sync(node);
  }

  async #sync(node: NodeObject): Promise<void> {
    const units = desiredUnits(node, this.label, this.marks());
    const patch = capacityPatch(node, units);
    if (!patch) return;
    try {
      // A JSON patch (client-node's default content type for patch calls): test-and-set on the fields it changes.
      const updated = await this.kube.core.patchNodeStatus({ name: node.metadata.name, body: patch }) as unknown as NodeObject;
      this.#nodes.set(node.metadata.name, updated);
      this.log.info({ node: node.metadata.name, units }, units ? `advertising ${HSM_RESOURCE}` : `removed ${HSM_RESOURCE}`);
    } catch (err) {
      this.log.warn({ node: node.metadata.name, err: kubeMessage(err) }, `could not patch ${HSM_RESOURCE} on the node`);
    }
  }
}
