import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane } from '../../helpers/control-plane.js';

// Smoke test of the test control plane itself: if this fails, every Kubernetes test would.
// Generous timeout: a cold start on a loaded 2-core machine (or the first binary build) is slow.
test('control plane: secrets round-trip through kube-apiserver and etcd, and survive an apiserver restart', { timeout: 30 * 60_000 }, async () => {
  const cp = await startControlPlane();
  try {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const namespace = 'smoke';
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedSecret({ namespace, body: { metadata: { name: 's1' }, stringData: { password: 'hunter2-smoke' } } });

    const read = await core.readNamespacedSecret({ namespace, name: 's1' });
    assert.equal(Buffer.from(read.data?.password ?? '', 'base64').toString(), 'hunter2-smoke');

    // No encryption config: the identity provider stores Kubernetes' protobuf envelope in the clear.
    const raw = await cp.etcdGet(`/registry/secrets/${namespace}/s1`);
    assert.ok(raw, 'secret is in etcd');
    assert.ok(raw.subarray(0, 4).equals(Buffer.from('k8s\0')), `protobuf magic, got ${JSON.stringify(raw.subarray(0, 16).toString('latin1'))}`);
    assert.ok(raw.includes('hunter2-smoke'), 'identity provider stores plaintext');
    assert.equal(await cp.etcdGet(`/registry/secrets/${namespace}/absent`), undefined);

    const ready = await cp.rawGet('/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ok');
    // RBAC is on: anonymous requests reach the apiserver but may not list anything.
    assert.equal((await cp.rawGet('/api/v1/namespaces', '')).status, 403);
    assert.equal((await cp.rawGet('/api/v1/namespaces', 'wrong-token')).status, 401);

    await cp.restartApiserver();
    const again = await core.readNamespacedSecret({ namespace, name: 's1' });
    assert.equal(Buffer.from(again.data?.password ?? '', 'base64').toString(), 'hunter2-smoke');
  } finally {
    await cp.stop();
  }
});
