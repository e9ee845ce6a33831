/**
 * What `keyhold operator manifests` prints: the CRD, and the operator with exactly the permissions
 * its code uses (docs/design-notes.md "Operator"): in its namespace, read and watch HSMClusters,
 * patch their status, get/create/update ConfigMaps, create Events; cluster-wide, read and watch
 * nodes and patch nodes/status (the keyhold.io/hsm extended resource). No Secrets, no deletes.
 */
import { hsmClusterCrd, GROUP, PLURAL } from './crd.js';

export interface OperatorManifestOptions {
  namespace: string;
  name?: string;
  image: string;
  periodSeconds?: number;
  /** Programs command sources may run (see --allow-command). */
  allowedCommands?: string[];
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The namespaced rules (a Role in the operator's namespace). */
export const NAMESPACE_RULES: PolicyRule[] = [
  { apiGroups: [GROUP], resources: [PLURAL], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ['patch'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create', 'update'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

/** The cluster-wide rules (a ClusterRole): nodes are not namespaced. */
export const CLUSTER_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
];

export function operatorManifests(options: OperatorManifestOptions): Record<string, unknown>[] {
  const name = options.name ?? 'keyhold-operator';
  const { namespace } = options;
  const labels = { 'app.kubernetes.io/name': 'keyhold', 'app.kubernetes.io/component': 'operator' };
  const roleRef = (kind: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  const subjects = [{ kind: 'ServiceAccount', name, namespace }];
  const args = ['operator', 'run', '--namespace', namespace, ...(options.periodSeconds ? ['--period', String(options.periodSeconds)] : []),
    ...(options.allowedCommands ?? []).flatMap((c) => ['--allow-command', c])];
  return [
    hsmClusterCrd(),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels }, rules: NAMESPACE_RULES },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace, labels }, roleRef: roleRef('Role'), subjects },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels }, rules: CLUSTER_RULES },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name, labels }, roleRef: roleRef('ClusterRole'), subjects },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace, labels },
      spec: {
        // One replica: two would both write the ConfigMap (harmless, the same content) and double every Event.
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name: 'operator',
              image: options.image,
              args,
              env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '192Mi' } },
              securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
            }],
          },
        },
      },
    },
  ];
}
