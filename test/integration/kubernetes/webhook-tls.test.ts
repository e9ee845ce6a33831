/**
 * Self-managed webhook TLS against a real kube-apiserver: the CA is published as caBundle by
 * patching the MutatingWebhookConfiguration, leaves are renewed every ~2 s and the CA is replaced
 * once, while pods are created continuously: every creation must be admitted and mutated.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { webhookConfiguration } from '../../../src/kubernetes/webhook/manifests.js';
import { caBundlePublisher } from '../../../src/kubernetes/webhook/registration.js';
import { serveWebhook } from '../../../src/kubernetes/webhook/server.js';
import { makeAuthority, selfManagedTls } from '../../../src/kubernetes/webhook/tls.js';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { freePorts } from '../../helpers/processes.js';
import { pollUntil } from '../../helpers/wait.js';

const quiet = { info: () => undefined, warn: () => undefined };

function servedCertificate(port: number): Promise<{ serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({ serial: cert.serialNumber, issuer: JSON.stringify(cert.issuer) });
    });
    socket.once('error', reject);
  });
}

describe('self-managed webhook TLS with a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let webhook: { url: string; close(): Promise<void> } | undefined;

  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await webhook?.close();
    await cp?.stop();
  });

  it('publishes its CA, renews leaves and replaces the CA with no failed admission', async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'rot' } } });
    await core.createNamespacedServiceAccount({ namespace: 'rot', body: { metadata: { name: 'app' } } });
    // The port must be known for the registration URL: take a free one, then register with an unrelated CA.
    const placeholder = await makeAuthority(3600_000, 'placeholder');
    const [port] = (await freePorts(1)) as [number];
    const url = `https://127.0.0.1:${port}`;
    const config = webhookConfiguration({ namespace: 'keyhold', url, caBundlePem: placeholder.pem }) as unknown as V1MutatingWebhookConfiguration;
    await cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body: config });

    const publish = caBundlePublisher(cp.kubeConfig, 'keyhold-injector');
    let published = 0;
    const tls = await selfManagedTls({
      dnsNames: ['localhost'], ips: ['127.0.0.1'], leafLifetimeMs: 2000, caLifetimeMs: 9000,
      publishCaBundle: async (pem) => { published++; await publish(pem); }, log: quiet,
    });
    webhook = await serveWebhook({ listen: { host: '127.0.0.1', port }, tls, agentImage: 'keyhold:test', serverAddress: 'https://keyhold:8200', log: quiet });

    // Wait for the first bundle to take effect, then create pods for 14 s: about 10 leaf renewals and one CA replacement.
    const annotations = { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-a': 'app/a' };
    const createPod = (name: string) => core.createNamespacedPod({ namespace: 'rot', body: { metadata: { name, annotations }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'app' }] } } });
    let warm = 0;
    await pollUntil('the published CA bundle to take effect', async () => {
      try {
        return (await createPod(`warm-${warm++}`)).metadata?.annotations?.['keyhold.io/status'] === 'injected';
      } catch {
        return false; // the placeholder bundle is still in use
      }
    }, { timeoutMs: 30_000, intervalMs: 300 });
    const serials = new Set<string>();
    const issuers = new Set<string>();
    const failures: string[] = [];
    let created = 0;
    const end = Date.now() + 14_000;
    for (let i = 0; Date.now() < end; i++) {
      try {
        const pod = await createPod(`pod-${i}`);
        assert.equal(pod.metadata?.annotations?.['keyhold.io/status'], 'injected');
        created++;
      } catch (err) {
        failures.push(`pod-${i}: ${(err as { body?: unknown }).body ? JSON.stringify((err as { body?: unknown }).body).slice(0, 200) : (err as Error).message}`);
      }
      const served = await servedCertificate(port);
      serials.add(served.serial);
      issuers.add(served.issuer);
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.deepEqual(failures, [], 'every admission during rotation succeeded');
    assert.ok(created > 20, `${created} pods created`);
    assert.ok(serials.size >= 5, `${serials.size} distinct leaves served`);
    assert.ok(issuers.size >= 2, `leaves from ${issuers.size} CAs`);
    assert.ok(published >= 2, `CA bundle published ${published} times`);
  });
});
