/**
 * The KMS plugin manifests of deploy/kms-plugin as they ship: the static pod's plugin command (its
 * flags, with the node's paths replaced by a test's) and its probe paths against a real plugin on a
 * real SoftHSM token, and the EncryptionConfiguration (its socket path replaced) given as-is to a
 * real kube-apiserver, which then stores Secrets encrypted through the plugin.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { startPluginProcess, type PluginProcess } from '../../helpers/kms-plugin-process.js';
import { tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { KMS_DIR, yamlFile } from './support.js';

const SOCKET_IN_MANIFEST = '/var/run/keyhold/kms.sock';
/** The flags startPluginProcess stands in for (listen, health, HSM from the test token); anything else in the manifest would be dropped silently. */
const PLACEHOLDER_FLAGS = ['--listen', '--health-listen', '--hsm-module', '--hsm-token-label', '--hsm-pin-file', '--key-label'];

describe('the KMS plugin static pod and EncryptionConfiguration, as shipped, on a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  const [pod] = yamlFile(join(KMS_DIR, 'keyhold-kms-plugin.yaml')) as V1Pod[];
  const container = pod?.spec?.containers[0];
  const flags = new Map((container?.command ?? []).slice(2).map((a) => a.split(/=(.*)/s).slice(0, 2) as [string, string]));
  const socket = join(tempDir('keyhold-kms-manifest-'), 'kms.sock');
  let plugin: PluginProcess;
  let cp: ControlPlane;

  before(async () => {
    assert.deepEqual(container?.command?.slice(0, 2), ['keyhold', 'kms-plugin']);
    assert.deepEqual([...flags.keys()].sort(), [...PLACEHOLDER_FLAGS].sort());
    assert.equal(flags.get('--listen'), SOCKET_IN_MANIFEST);
    plugin = await startPluginProcess({ socket, token: makeSoftHsmToken('kms-manifest'), keyLabel: flags.get('--key-label') as string });
    const shipped = readFileSync(join(KMS_DIR, 'encryption-configuration.yaml'), 'utf8');
    assert.ok(shipped.includes(`unix://${SOCKET_IN_MANIFEST}`));
    cp = await startControlPlane({ encryptionConfig: shipped.replace(`unix://${SOCKET_IN_MANIFEST}`, `unix://${socket}`) });
  });
  after(async () => {
    await cp?.stop();
    await plugin?.stop();
  });

  it('the probes the static pod declares answer 200 on a healthy plugin', async () => {
    const paths = [container?.livenessProbe, container?.readinessProbe, container?.startupProbe].map((p) => p?.httpGet?.path);
    assert.deepEqual(paths, ['/livez', '/readyz', '/livez']);
    for (const path of paths) assert.equal((await fetch(`${plugin.healthUrl}${path}`)).status, 200, path);
    // The health port in the manifest is the one the probes use, on the loopback the flag binds.
    assert.equal(flags.get('--health-listen'), `${container?.livenessProbe?.httpGet?.host}:${container?.livenessProbe?.httpGet?.port}`);
  });

  it('kube-apiserver with the shipped EncryptionConfiguration stores Secrets through keyhold', async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'kms-manifest' } } });
    const value = 'kms-manifest-canary-31b7';
    await core.createNamespacedSecret({ namespace: 'kms-manifest', body: { metadata: { name: 's' }, stringData: { value } } });
    const raw = await cp.etcdGet('/registry/secrets/kms-manifest/s');
    assert.ok(raw);
    assert.equal(raw.subarray(0, 23).toString('latin1'), 'k8s:enc:kms:v2:keyhold:');
    assert.ok(!raw.includes(value));
    const back = await core.readNamespacedSecret({ namespace: 'kms-manifest', name: 's' });
    assert.equal(Buffer.from(back.data?.value ?? '', 'base64').toString(), value);
    assert.equal((await cp.rawGet('/healthz/kms-providers')).status, 200);
  });
});
