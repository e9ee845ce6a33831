/** `keyhold operator run` and `keyhold operator manifests` (the Kubernetes HSM-discovery operator). */
import { pino } from 'pino';
import { stringify } from 'yaml';
import { KeyholdError } from '../../errors.js';
import { wholeNumber } from '../flags.js';

export interface OperatorRunFlags {
  kubeconfig?: string;
  namespace?: string;
  period: string;
  allowCommand: string[];
  nodeLabel: string;
  nodeResource: boolean;
  logLevel: string;
}

export async function runOperatorCommand(flags: OperatorRunFlags): Promise<void> {
  const { operatorKube } = await import('../../kubernetes/operator/kube.js');
  const { runOperator } = await import('../../kubernetes/operator/operator.js');
  const logger = pino({ level: flags.logLevel, base: { component: 'operator' } });
  const inCluster = !flags.kubeconfig && !process.env.KUBECONFIG && !!process.env.KUBERNETES_SERVICE_HOST;
  const kube = operatorKube({ kubeconfig: flags.kubeconfig, inCluster });
  let namespace = flags.namespace;
  // In a pod, client-node's loadFromCluster has put the service account's namespace in the context.
  if (!namespace && inCluster) namespace = kube.kc.getContextObject(kube.kc.getCurrentContext())?.namespace?.trim();
  if (!namespace) throw new KeyholdError('ERR_CONFIG', 'give --namespace (the namespace of the HSMClusters and their ConfigMaps)');
  for (const c of flags.allowCommand) if (!c.startsWith('/')) throw new KeyholdError('ERR_CONFIG', `--allow-command takes absolute program paths, got ${JSON.stringify(c)}`);
  const operator = runOperator({
    kube,
    namespace,
    periodSeconds: wholeNumber('--period', flags.period),
    allowedCommands: flags.allowCommand,
    nodeLabel: flags.nodeResource ? flags.nodeLabel : false,
    log: logger,
  });
  await operator.ready;
  logger.info({ namespace }, 'operator watching HSMClusters');
  await new Promise<void>((resolve) => {
    const stop = () => void operator.stop().then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export async function printOperatorManifests(flags: { namespace: string; image: string; period?: string; allowCommand: string[]; crdOnly?: boolean }): Promise<void> {
  const { operatorManifests } = await import('../../kubernetes/operator/manifests.js');
  const { hsmClusterCrd } = await import('../../kubernetes/operator/crd.js');
  const docs = flags.crdOnly ? [hsmClusterCrd()] : operatorManifests({
    namespace: flags.namespace, image: flags.image, allowedCommands: flags.allowCommand,
    ...(flags.period ? { periodSeconds: wholeNumber('--period', flags.period) } : {}),
  });
  process.stdout.write(docs.map((d) => stringify(d)).join('---\n'));
}
