/**
 * The operator's Kubernetes client: @kubernetes/client-node's KubeConfig and generated APIs (core
 * for ConfigMaps, Events and nodes; custom objects for HSMClusters and their status). The CLI
 * loads this (and client-node) only for `keyhold operator run`.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { KeyholdError } from '../../errors.js';

export interface OperatorKube {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

/** From a kubeconfig file (its current context), else in-cluster (the pod's service account), else $KUBECONFIG / ~/.kube/config. */
export function operatorKube(options: { kubeconfig?: string; inCluster?: boolean } = {}): OperatorKube {
  const kc = new KubeConfig();
  if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
  else if (options.inCluster) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new KeyholdError('ERR_CONFIG', 'the kubeconfig has no current cluster');
  return { kc, core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}
