/**
 * End to end: a real kube-apiserver + etcd encrypting Secrets through `keyhold kms-plugin` (a real
 * child process, direct mode) rooted in a real SoftHSM token.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { KmsTestClient } from '../../helpers/kms-client.js';
import { decodeEncryptedObject, startPluginProcess, type PluginProcess } from '../../helpers/kms-plugin-process.js';
import { CLI, tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { pollUntil } from '../../helpers/wait.js';

const run = promisify(execFile);
const token = makeSoftHsmToken('kms-e2e');
const work = tempDir('keyhold-kms-e2e-');
const socket = join(work, 'kms.sock');
const LABEL = 'k8s-kms';
const PREFIX = 'k8s:enc:kms:v2:keyhold:';
const NS = 'kms-e2e';
const CANARY = 'canary-7f3e9a1c-keyhold-secret-value';

const encryptionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: keyhold
          endpoint: unix://${socket}
          timeout: 3s
      - identity: {}
`;

async function kmsCli(...args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [CLI, 'kms-plugin', ...args, '--hsm-module', token.module, '--hsm-token-label', token.label, '--hsm-pin-file', token.pinFile, '--key-label', LABEL],
    { env: { ...process.env, SOFTHSM2_CONF: token.confPath } });
  return JSON.parse(stdout);
}

describe('KMS v2 with a real kube-apiserver', { timeout: 15 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let plugin: PluginProcess;

  const stored = async (name: string) => {
    const raw = await cp.etcdGet(`/registry/secrets/${NS}/${name}`);
    assert.ok(raw, `secret ${name} is in etcd`);
    return raw;
  };
  const storedKeyId = async (name: string) => {
    const raw = await stored(name);
    assert.ok(raw.subarray(0, PREFIX.length).toString('latin1') === PREFIX, `stored with ${PREFIX}`);
    return decodeEncryptedObject(raw.subarray(PREFIX.length)).keyID;
  };
  const readValue = async (name: string) => {
    const secret = await core.readNamespacedSecret({ namespace: NS, name });
    return Buffer.from(secret.data?.value ?? '', 'base64').toString();
  };
  const create = (name: string, value: string) => core.createNamespacedSecret({ namespace: NS, body: { metadata: { name }, stringData: { value } } });
  const kmsHealth = async () => (await cp.rawGet('/healthz/kms-providers')).status;

  before(async () => {
    plugin = await startPluginProcess({ socket, token, keyLabel: LABEL });
    cp = await startControlPlane({ encryptionConfig });
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => {
    await cp?.stop();
    await plugin?.stop();
  });

  it('a Secret is stored under the keyhold prefix with no trace of its value, and reads back', async () => {
    await create('first', CANARY);
    const raw = await stored('first');
    assert.equal(raw.subarray(0, PREFIX.length).toString('latin1'), PREFIX);
    for (const needle of [CANARY, Buffer.from(CANARY).toString('base64'), Buffer.from(CANARY).toString('hex')]) assert.ok(!raw.includes(needle), `etcd holds ${needle}`);
    const object = decodeEncryptedObject(raw.subarray(PREFIX.length));
    const client = new KmsTestClient(`unix://${socket}`);
    try {
      assert.equal(object.keyID, (await client.status()).key_id);
    } finally {
      client.close();
    }
    assert.ok(object.annotations['kek.keyhold.io'], 'the wrapped local KEK travels in the annotation');
    assert.equal(await readValue('first'), CANARY);
    assert.equal((await cp.rawGet('/healthz/kms-providers')).status, 200);
  });

  it('reads back after the plugin restarts, and after kube-apiserver restarts (a cold plugin unwraps through the HSM)', async () => {
    await plugin.stop();
    plugin = await startPluginProcess({ socket, token, keyLabel: LABEL });
    assert.equal(await readValue('first'), CANARY);
    await cp.restartApiserver();
    assert.equal(await readValue('first'), CANARY);
    const metrics = await (await fetch(`${plugin.healthUrl}/metrics`)).text();
    assert.match(metrics, /keyhold_kms_calls_total\{method="Decrypt",code="OK"\} [1-9]/, 'the restarted apiserver decrypted its DEK through the plugin');
  });

  it('rotation: new key_id without a plugin restart; new Secrets use it; old ones read; after re-writing and retiring, everything reads', async () => {
    const oldKeyId = await storedKeyId('first');
    for (let i = 0; i < 3; i++) await create(`old-${i}`, `${CANARY}-old-${i}`);
    const versions = await kmsCli('versions');
    const rotated = await kmsCli('rotate');
    const client = new KmsTestClient(`unix://${socket}`);
    try {
      const status = await client.status();
      assert.equal(status.key_id, rotated.key_id, 'the next Status reports the new key_id');
      assert.notEqual(status.key_id, oldKeyId);
    } finally {
      client.close();
    }
    // kube-apiserver polls Status about once a minute; new writes move to the new key_id after that.
    let n = 0;
    await pollUntil('a new Secret stored under the new key_id', async () => {
      const name = `new-${n++}`;
      try {
        await create(name, `${CANARY}-${name}`);
        return (await storedKeyId(name)) === rotated.key_id;
      } catch {
        return false; // a failed attempt is retried until the deadline
      }
    }, { timeoutMs: 150_000, intervalMs: 500 });
    for (let i = 0; i < 3; i++) assert.equal(await readValue(`old-${i}`), `${CANARY}-old-${i}`);
    // Re-encrypt: re-write every Secret (what `kubectl get secrets -A -o json | kubectl replace -f -` does).
    const list = await core.listNamespacedSecret({ namespace: NS });
    for (const secret of list.items) {
      await core.replaceNamespacedSecret({ namespace: NS, name: secret.metadata?.name as string, body: secret as V1Secret });
    }
    for (const secret of list.items) assert.equal(await storedKeyId(secret.metadata?.name as string), rotated.key_id, `${secret.metadata?.name} re-encrypted`);
    await kmsCli('retire', '--version', String(versions.newest));
    // A restarted apiserver has no cached DEKs: every read goes through the plugin and the new version.
    await plugin.stop();
    plugin = await startPluginProcess({ socket, token, keyLabel: LABEL });
    await cp.restartApiserver();
    for (const secret of list.items) {
      const name = secret.metadata?.name as string;
      assert.ok((await readValue(name)).startsWith(CANARY), `${name} reads after retirement`);
    }
  });

  it('plugin stopped: /healthz/kms-providers fails; a wrong PIN keeps it failing with a clear log line; the right PIN brings it back without an apiserver restart', async () => {
    await plugin.stop();
    await pollUntil('kms-providers unhealthy', () => kmsHealth().then((s) => s !== 200, () => false), { timeoutMs: 120_000, intervalMs: 500 });
    const wrongPin = join(work, 'wrong-pin');
    writeFileSync(wrongPin, 'definitely-wrong\n', { mode: 0o600 });
    plugin = await startPluginProcess({ socket, token, keyLabel: LABEL, pinFile: wrongPin });
    const health = await fetch(`${plugin.healthUrl}/healthz`);
    assert.equal(health.status, 503);
    assert.match(await health.text(), /PIN is incorrect/);
    assert.match(plugin.output(), /PIN is incorrect.*Not retrying with this PIN/);
    assert.ok(!plugin.output().includes('definitely-wrong'), 'the PIN is never logged');
    await new Promise((r) => setTimeout(r, 12_000)); // longer than the apiserver's unhealthy poll interval
    assert.notEqual(await kmsHealth(), 200);
    assert.equal((plugin.output().match(/Not retrying with this PIN/g) ?? []).length, 1, 'one login attempt with the wrong PIN, not a retry loop');
    // The token is not locked: the right PIN works at once.
    writeFileSync(wrongPin, `${(await import('node:fs')).readFileSync(token.pinFile, 'utf8')}`);
    await pollUntil('plugin healthy after the PIN was fixed', () => fetch(`${plugin.healthUrl}/healthz`).then((r) => r.status === 200, () => false), { timeoutMs: 30_000, intervalMs: 500 });
    await pollUntil('kms-providers healthy again', () => kmsHealth().then((s) => s === 200, () => false), { timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(await readValue('first'), CANARY);
  });
});
