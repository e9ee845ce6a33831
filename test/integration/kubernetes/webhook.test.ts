/**
 * The injector webhook registered with a real kube-apiserver: what the apiserver stores for
 * annotated, unannotated, protected-namespace and env-mode pods, and failurePolicy Fail without
 * deadlocking the webhook's own namespace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration, type V1Pod } from '@kubernetes/client-node';
import { webhookConfiguration } from '../../../src/kubernetes/webhook/manifests.js';
import { serveWebhook } from '../../../src/kubernetes/webhook/server.js';
import { fileTls } from '../../../src/kubernetes/webhook/tls.js';
import { makePki, startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { tempDir } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';

const IMAGE = `registry.example/app@sha256:${'c'.repeat(64)}`;
const quiet = { info: () => undefined, warn: () => undefined };
/** client-node returns class instances; compare their data. */
const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x ?? null)) as T;

describe('injector webhook with a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let webhook: { url: string; close(): Promise<void> };
  let pki: { caPem: string; certFile: string; keyFile: string };
  let port: number;

  const create = (namespace: string, name: string, annotations: Record<string, string> | undefined, container: Partial<V1Pod['spec'] extends infer S ? S extends { containers: Array<infer C> } ? C : never : never> = {}) =>
    core.createNamespacedPod({ namespace, body: { metadata: { name, ...(annotations ? { annotations } : {}) }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: IMAGE, ...container }] } } });

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    for (const ns of ['inj', 'keyhold']) {
      await core.createNamespace({ body: { metadata: { name: ns } } });
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'app' } } });
    }
    await core.createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name: 'app' } } });
    pki = await makePki(tempDir('keyhold-webhook-pki-'));
    webhook = await serveWebhook({ listen: { host: '127.0.0.1', port: 0 }, tls: fileTls(pki.certFile, pki.keyFile), agentImage: 'keyhold:test', serverAddress: 'https://keyhold.keyhold.svc:8200', log: quiet });
    port = Number(new URL(webhook.url).port);
    const config = webhookConfiguration({ namespace: 'keyhold', url: webhook.url, caBundlePem: pki.caPem }) as unknown as V1MutatingWebhookConfiguration;
    await cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body: config });
    // Registration takes effect asynchronously: wait until an annotated pod comes back mutated.
    let i = 0;
    await pollUntil('the webhook to take effect', async () => {
      const probe = await create('inj', `probe-${i++}`, { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-a': 'app/a' });
      return probe.metadata?.annotations?.['keyhold.io/status'] === 'injected';
    }, { timeoutMs: 30_000, intervalMs: 500 });
  });

  after(async () => {
    await webhook?.close();
    await cp?.stop();
  });

  it('an annotated pod is stored with exactly the expected mutation', async () => {
    const created = await create('inj', 'annotated', { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-db': 'app/db#password', 'keyhold.io/mode-db': '0440', 'keyhold.io/refresh': 'true' });
    const stored = await core.readNamespacedPod({ namespace: 'inj', name: 'annotated' });
    assert.equal(stored.metadata?.annotations?.['keyhold.io/status'], 'injected');
    assert.deepEqual(plain(created.spec), plain(stored.spec));
    const spec = stored.spec as NonNullable<V1Pod['spec']>;
    const keyholdVolumes = (spec.volumes ?? []).filter((v) => v.name.startsWith('keyhold-'));
    assert.deepEqual(keyholdVolumes.map((v) => v.name), ['keyhold-token', 'keyhold-secrets']);
    assert.deepEqual(plain(keyholdVolumes[0]?.projected?.sources?.[0]?.serviceAccountToken), { audience: 'keyhold', expirationSeconds: 600, path: 'token' });
    assert.equal(keyholdVolumes[1]?.emptyDir?.medium, 'Memory');
    assert.deepEqual(spec.initContainers?.map((c) => [c.name, c.restartPolicy]), [['keyhold-agent-init', undefined], ['keyhold-agent', 'Always']]);
    const init = spec.initContainers?.[0];
    assert.deepEqual(init?.command, ['keyhold', 'agent', '--role', 'app', '--jwt-file', '/var/run/secrets/keyhold/token', '--dest', '/keyhold/secrets', '--secret', 'db=app/db#password:0440']);
    assert.deepEqual(plain(init?.env), [{ name: 'KEYHOLD_ADDR', value: 'https://keyhold.keyhold.svc:8200' }]);
    assert.equal(init?.image, 'keyhold:test');
    assert.deepEqual(plain(init?.securityContext?.capabilities), { drop: ['ALL'] });
    assert.equal(init?.securityContext?.runAsNonRoot, true);
    assert.equal(init?.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(init?.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(plain(init?.resources?.requests), { cpu: '5m', memory: '48Mi' });
    const appMounts = spec.containers[0]?.volumeMounts?.filter((m) => m.name.startsWith('keyhold-'));
    assert.deepEqual(plain(appMounts), [{ name: 'keyhold-secrets', mountPath: '/keyhold/secrets', readOnly: true }]);
  });

  it('an unannotated pod is untouched', async () => {
    const stored = await create('inj', 'plain', undefined);
    assert.equal(stored.metadata?.annotations?.['keyhold.io/status'], undefined);
    assert.equal(stored.spec?.initContainers, undefined);
    assert.ok(!(stored.spec?.volumes ?? []).some((v) => v.name.startsWith('keyhold-')));
  });

  it('an annotated pod in kube-system is untouched', async () => {
    const stored = await create('kube-system', 'system', { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-a': 'app/a' });
    assert.equal(stored.metadata?.annotations?.['keyhold.io/status'], undefined);
    assert.equal(stored.spec?.initContainers, undefined);
  });

  it('env mode: without a known command the pod is refused with the explanation; with one, it runs under agent exec and the spec holds only the reference', async () => {
    const env = [{ name: 'DB_PASSWORD', value: 'keyhold:app/db#password' }];
    await assert.rejects(create('inj', 'env-unknown', { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app' }, { env }), (err: { code?: number; body?: string }) => {
      const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
      assert.equal(err.code, 400, body);
      assert.match(body, /keyhold\.io\/command-app/);
      assert.match(body, /never asks a registry/);
      return true;
    });
    const stored = await create('inj', 'env-known', { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app' }, { env, command: ['/app'], args: ['--serve'] });
    assert.deepEqual(stored.spec?.containers[0]?.command, ['/keyhold/bin/keyhold', 'agent', 'exec', '--role', 'app', '--jwt-file', '/var/run/secrets/keyhold/token', '--', '/app', '--serve']);
    assert.equal(stored.spec?.containers[0]?.env?.find((e) => e.name === 'DB_PASSWORD')?.value, 'keyhold:app/db#password');
    const raw = await cp.etcdGet('/registry/pods/inj/env-known');
    assert.ok(raw?.includes('keyhold:app/db#password'));
  });

  it('failurePolicy Fail: with the webhook down, opted-in namespaces get no pods; the webhook\'s own namespace still does (no deadlock)', async () => {
    await webhook.close();
    try {
      const webhookDown = (err: { code?: number; body?: unknown }) => {
        const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
        assert.match(body, /failed calling webhook \W{0,2}inject\.keyhold\.io/);
        return true;
      };
      await assert.rejects(create('inj', 'while-down', { 'keyhold.io/inject': 'true', 'keyhold.io/role': 'app', 'keyhold.io/secret-a': 'app/a' }), webhookDown);
      await assert.rejects(create('inj', 'while-down-plain', undefined), webhookDown, 'Fail applies to every pod the registration selects');
      const own = await create('keyhold', 'webhook-pod', undefined);
      assert.equal(own.metadata?.name, 'webhook-pod');
    } finally {
      webhook = await serveWebhook({ listen: { host: '127.0.0.1', port }, tls: fileTls(pki.certFile, pki.keyFile), agentImage: 'keyhold:test', serverAddress: 'https://keyhold.keyhold.svc:8200', log: quiet });
    }
  });
});
