/**
 * The MutatingWebhookConfiguration. failurePolicy Fail (a pod that asked for secrets must not start
 * without them), and no deadlock: the webhook's own namespace, kube-system and kube-public are
 * excluded by namespaceSelector, so the webhook's pods never wait on the webhook.
 */
import { PROTECTED_NAMESPACES } from './mutate.js';
export interface RegistrationOptions {
  /** Where the webhook runs; excluded from injection. */
  namespace: string;
  /** In-cluster Service in front of the webhook… */
  service?: { name: string; port?: number };
  /** …or a URL (outside the cluster, or tests). */
  url?: string;
  caBundlePem: string;
  name?: string;
  timeoutSeconds?: number;
}

export function webhookConfiguration(options: RegistrationOptions): Record<string, unknown> {
  if (!options.service === !options.url) throw new Error('give exactly one of service or url');
  const clientConfig = {
    ...(options.service ? { service: { namespace: options.namespace, name: options.service.name, path: '/mutate', port: options.service.port ?? 443 } } : { url: `${options.url?.replace(/\/+$/, '')}/mutate` }),
    caBundle: Buffer.from(options.caBundlePem).toString('base64'),
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: options.name ?? 'keyhold-injector', labels: { 'app.kubernetes.io/name': 'keyhold' } },
    webhooks: [{
      name: 'inject.keyhold.io',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      // An injected pod is left as it is (mutate() skips it), so being called again would add nothing:
      // containers another webhook adds after us do not get the secrets mount.
      reinvocationPolicy: 'Never',
      timeoutSeconds: options.timeoutSeconds ?? 5,
      clientConfig,
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...new Set([...PROTECTED_NAMESPACES, options.namespace])] }] },
      // Defence in depth: keyhold's own pods, wherever they run.
      objectSelector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'NotIn', values: ['keyhold'] }] },
    }],
  };
}
