import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { endpointConfigMapRules, watchEndpointConfigMap } from '../../../src/hsm/endpoint-configmap.js';
import { tempDir } from '../../helpers/temp.js';

describe('the endpoint ConfigMap watch: configuration refused before any request', () => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  afterEach(() => {
    if (saved === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
    else process.env.KUBERNETES_SERVICE_HOST = saved;
  });
  const refused = (pattern: RegExp) => (err: { code?: string; message: string }) => err.code === 'ERR_CONFIG' && pattern.test(err.message);

  it('outside a cluster and without a kubeconfig says so', async () => {
    delete process.env.KUBERNETES_SERVICE_HOST;
    await assert.rejects(watchEndpointConfigMap({ namespace: 'keyhold', name: 'hsm' }, () => {}), refused(/not running in a cluster/));
  });

  it('refuses names that are not Kubernetes object names, and a kubeconfig that cannot be read', async () => {
    await assert.rejects(watchEndpointConfigMap({ namespace: 'Key/hold', name: 'hsm' }, () => {}), refused(/Kubernetes object names/));
    await assert.rejects(watchEndpointConfigMap({ namespace: 'keyhold', name: '../x' }, () => {}), refused(/Kubernetes object names/));
    const missing = join(tempDir('keyhold-kc-'), 'nothing');
    await assert.rejects(watchEndpointConfigMap({ namespace: 'keyhold', name: 'hsm', kubeconfig: missing }, () => {}), refused(/hsm\.endpoints\.configMap/));
    const empty = join(tempDir('keyhold-kc-'), 'kubeconfig');
    writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    await assert.rejects(watchEndpointConfigMap({ namespace: 'keyhold', name: 'hsm', kubeconfig: empty }, () => {}), refused(/no current cluster/));
  });

  it('the Role the server needs: get/list/watch on that one ConfigMap', () => {
    assert.deepEqual(endpointConfigMapRules('hsm-a'), [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['hsm-a'], verbs: ['get', 'list', 'watch'] }]);
  });
});
