/**
 * `keyhold operator run`: watches the HSMClusters of one namespace and runs one reconcile loop per
 * cluster, at its probe period and at once when its spec changes (a new generation) or it is
 * created; stops a deleted cluster's loop (its ConfigMap goes with it through the owner reference,
 * by Kubernetes' garbage collector). Watches nodes too, for the keyhold.io/hsm extended resource.
 */
import { hostname } from 'node:os';
import { kubeMessage, listAndWatch, type KubeList } from '../../hsm/kube-watch.js';
import { DEFAULT_NODE_LABEL, GROUP, PLURAL, VERSION } from './crd.js';
import { NodeAdvertiser, type NodeMark, type NodeObject } from './nodes.js';
import type { OperatorKube } from './kube.js';
import { ClusterReconciler, clusterPath, type HsmClusterObject, type Logger } from './reconciler.js';

export interface OperatorOptions {
  kube: OperatorKube;
  namespace: string;
  /** Probe period for clusters whose spec names none. */
  periodSeconds: number;
  /** Programs HSMCluster command sources may run (argv[0]); none by default. */
  allowedCommands: string[];
  /** Label marking nodes with a local HSM; false: do not manage node capacity at all. */
  nodeLabel: string | false;
  log: Logger;
}

export interface RunningOperator {
  /** Resolves once the first list of HSMClusters (and of nodes) has been applied. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

class ClusterLoop {
  readonly reconciler: ClusterReconciler;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  generation: number | undefined;

  constructor(public cluster: HsmClusterObject, private readonly options: OperatorOptions, private readonly onSpec: () => void) {
    this.reconciler = new ClusterReconciler({
      kube: options.kube, log: options.log,
      sources: { allowedCommands: options.allowedCommands },
      defaults: { periodSeconds: options.periodSeconds },
      instance: process.env.POD_NAME ?? hostname(),
    });
    this.generation = cluster.metadata.generation;
  }

  /** Runs a reconcile now (or right after the one in flight), then every period. */
  kick(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    if (this.#running) { this.#again = true; return; }
    this.#running = (async () => {
      let period = 5000;
      try {
        do {
          this.#again = false;
          const hadSpec = JSON.stringify(this.reconciler.spec?.nodeResource);
          period = await this.reconciler.reconcile(this.cluster);
          if (JSON.stringify(this.reconciler.spec?.nodeResource) !== hadSpec) this.onSpec();
        } while (this.#again && !this.#stopped);
      } catch (err) {
        // reconcile() reports the failures it expects in status; anything else is logged and retried at the next period.
        this.options.log.warn({ cluster: `${this.cluster.metadata.namespace}/${this.cluster.metadata.name}`, err: (err as Error).message }, 'reconcile failed');
      } finally {
        this.#running = undefined;
        if (!this.#stopped) this.#timer = setTimeout(() => this.kick(), period);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}

export function runOperator(options: OperatorOptions): RunningOperator {
  const { kube, namespace, log } = options;
  const abort = new AbortController();
  const loops = new Map<string, ClusterLoop>();
  const marks = (): NodeMark[] => [...loops.values()].flatMap((l) => (l.reconciler.spec?.nodeResource ? [l.reconciler.spec.nodeResource] : []));
  const nodes = options.nodeLabel === false ? undefined : new NodeAdvertiser(kube, options.nodeLabel || DEFAULT_NODE_LABEL, marks, log);
  const resyncNodes = () => { void nodes?.syncAll(); };

  const upsert = (cluster: HsmClusterObject) => {
    const uid = cluster.metadata.uid;
    const loop = loops.get(uid);
    if (!loop) {
      const created = new ClusterLoop(cluster, options, resyncNodes);
      loops.set(uid, created);
      log.info({ cluster: `${namespace}/${cluster.metadata.name}` }, 'reconciling HSMCluster');
      created.kick();
      return;
    }
    loop.cluster = cluster;
    // Our own status writes come back as MODIFIED with the same generation: only a spec change reconciles at once.
    if (cluster.metadata.generation !== loop.generation) {
      loop.generation = cluster.metadata.generation;
      loop.kick();
    }
  };
  const remove = (uid: string) => {
    const loop = loops.get(uid);
    if (!loop) return;
    loops.delete(uid);
    log.info({ cluster: `${namespace}/${loop.cluster.metadata.name}` }, 'HSMCluster deleted: its loop stops (its ConfigMap is garbage-collected through the owner reference)');
    void loop.stop().then(resyncNodes);
  };

  let clustersListed!: () => void;
  let nodesListed!: () => void;
  const ready = Promise.all([
    new Promise<void>((r) => { clustersListed = r; }),
    nodes ? new Promise<void>((r) => { nodesListed = r; }) : Promise.resolve(),
  ]).then(() => undefined);

  const listClusters = () => kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }) as Promise<KubeList<HsmClusterObject>>;
  const watching = [listAndWatch<HsmClusterObject>(kube.kc, clusterPath(namespace), listClusters, {
    onList: (items) => {
      const seen = new Set<string>();
      for (const item of items) { seen.add(item.metadata.uid); upsert(item); }
      for (const uid of [...loops.keys()]) if (!seen.has(uid)) remove(uid);
      clustersListed();
    },
    onEvent: (type, object) => {
      if (type === 'DELETED') remove(object.metadata.uid);
      else upsert(object);
    },
    onError: (err) => log.warn({ err: kubeMessage(err) }, 'HSMCluster watch failed; listing again'),
  }, abort.signal)];

  let nodeResync: NodeJS.Timeout | undefined;
  if (nodes) {
    watching.push(listAndWatch<NodeObject>(kube.kc, '/api/v1/nodes', () => kube.core.listNode() as unknown as Promise<KubeList<NodeObject>>, {
      onList: (items) => {
        nodes.replaceAll(items);
        void nodes.syncAll().finally(() => nodesListed());
      },
      onEvent: (type, node) => {
        if (type === 'DELETED') nodes.forget(node.metadata.name);
        else void nodes.observe(node);
      },
      onError: (err) => log.warn({ err: kubeMessage(err) }, 'node watch failed; listing again'),
    }, abort.signal));
    // A patch that failed (a conflict, the API server away) is tried again.
    nodeResync = setInterval(resyncNodes, options.periodSeconds * 1000);
  }

  return {
    ready,
    async stop() {
      abort.abort();
      clearInterval(nodeResync);
      await Promise.all([...loops.values()].map((l) => l.stop()));
      await Promise.all(watching);
    },
  };
}
