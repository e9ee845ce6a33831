/** Publishing the self-managed CA: every webhook of the MutatingWebhookConfiguration gets the bundle. */
import { AdmissionregistrationV1Api, type KubeConfig } from '@kubernetes/client-node';

export function caBundlePublisher(kubeConfig: KubeConfig, configurationName: string): (bundlePem: string) => Promise<void> {
  const api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  return async (bundlePem) => {
    const caBundle = Buffer.from(bundlePem).toString('base64');
    // Read-modify-replace with the resourceVersion: a concurrent edit makes this fail and retry, never lose the other edit.
    for (let attempt = 0; ; attempt++) {
      const current = await api.readMutatingWebhookConfiguration({ name: configurationName });
      for (const webhook of current.webhooks ?? []) webhook.clientConfig = { ...webhook.clientConfig, caBundle };
      try {
        await api.replaceMutatingWebhookConfiguration({ name: configurationName, body: current });
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 4) throw err;
      }
    }
  };
}
