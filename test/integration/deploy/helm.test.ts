/**
 * The Helm chart (deploy/helm/keyhold) and the KMS plugin's static pod (deploy/kms-plugin): helm
 * lint, helm template with the defaults and with every values set in the chart's ci/ folder, and
 * every rendered object created with a server-side dry-run (dryRun=All: validation and admission,
 * nothing stored) on a real kube-apiserver. Then what a dry-run cannot see: that keyhold runs
 * locked down, that no secret reaches a ConfigMap, that the config is keyhold's own format, and
 * that the RBAC is what keyhold needs — installed for real and used by keyhold itself.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubernetesObjectApi, type KubernetesObject, type V1ClusterRole, type V1ConfigMap, type V1Container, type V1Deployment, type V1MutatingWebhookConfiguration, type V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../../../src/core/config.js';
import { endpointConfigMapRules, watchEndpointConfigMap } from '../../../src/hsm/endpoint-configmap.js';
import type { HsmEndpointSet } from '../../../src/hsm/endpoint-set.js';
import { loginAccess } from '../../../src/identity/kubernetes/access.js';
import { hsmClusterCrd } from '../../../src/kubernetes/operator/crd.js';
import { CLUSTER_RULES, NAMESPACE_RULES } from '../../../src/kubernetes/operator/manifests.js';
import { webhookConfiguration } from '../../../src/kubernetes/webhook/manifests.js';
import { caBundlePublisher } from '../../../src/kubernetes/webhook/registration.js';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { tokenKubeConfig } from '../../helpers/kube-request.js';
import { loginConfig, serviceAccountToken } from '../../helpers/kubernetes-login.js';
import { pollUntil } from '../../helpers/wait.js';
import { call, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { CHART, KMS_DIR, helm, yamlFile, yamlObjects } from './support.js';

const NS = 'keyhold-test';
const RELEASE = 'keyhold';
/** The values sets: the defaults, and each file of the chart's ci/ folder (every documented option). */
const SETS: Array<{ name: string; files: string[] }> = [
  { name: 'defaults', files: [] },
  ...readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')).sort().map((f) => ({ name: f.replace(/-values\.yaml$/, ''), files: [join(CHART, 'ci', f)] })),
];
/** Kinds whose CRD a bare kube-apiserver does not have: checked from helm template only. */
const NO_CRD_HERE = new Set(['monitoring.coreos.com/v1 ServiceMonitor']);

type Rendered = KubernetesObject & { spec?: any; data?: Record<string, string>; rules?: any[]; webhooks?: any[] };

async function render(files: string[], extra: string[] = [], namespace = NS, release = RELEASE): Promise<Rendered[]> {
  const r = await helm(['template', release, CHART, '--namespace', namespace, ...files.flatMap((f) => ['-f', f]), ...extra]);
  assert.ok(r.ok, `helm template ${files.join(' ')} ${extra.join(' ')}: ${r.stderr}`);
  return yamlObjects(r.stdout) as Rendered[];
}

/** The error helm prints when the chart refuses values (it must refuse, not render). */
async function refusal(extra: string[]): Promise<string> {
  const r = await helm(['template', RELEASE, CHART, '--namespace', NS, ...extra]);
  assert.equal(r.ok, false, `helm template ${extra.join(' ')} should have been refused, rendered:\n${r.stdout.slice(0, 2000)}`);
  return r.stderr;
}

const kindOf = (o: KubernetesObject) => `${o.apiVersion} ${o.kind}`;
const find = <T = Rendered>(objects: Rendered[], kind: string, name?: string): T[] => objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name)) as T[];
const containersOf = (d: V1Deployment): V1Container[] => [...(d.spec?.template.spec?.initContainers ?? []), ...(d.spec?.template.spec?.containers ?? [])];

describe('Helm chart and KMS plugin manifests', { timeout: 20 * 60_000 }, () => {
  let cp: ControlPlane;
  let objects: KubernetesObjectApi;
  const rendered = new Map<string, Rendered[]>();

  before(async () => {
    // helm builds (once) while the control plane starts.
    const [plane] = await Promise.all([startControlPlane(), ...SETS.map(async (set) => rendered.set(set.name, await render(set.files)))]);
    cp = plane;
    objects = KubernetesObjectApi.makeApiClient(cp.kubeConfig);
    // Namespaced objects need their namespace to exist, even in a dry-run.
    await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => { await cp?.stop(); });

  it('passes helm lint --strict with the defaults and with every values set', async () => {
    for (const set of SETS) {
      const r = await helm(['lint', '--strict', CHART, '--namespace', NS, ...set.files.flatMap((f) => ['-f', f])]);
      assert.ok(r.ok, `helm lint (${set.name}): ${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('renders what each values set asks for', () => {
    const names = (set: string) => (rendered.get(set) ?? []).map((o) => `${o.kind}/${o.metadata?.name}`).sort();
    assert.deepEqual(names('defaults'), [
      'ClusterRole/keyhold-reviewer', 'ClusterRole/keyhold-webhook', 'ClusterRoleBinding/keyhold-reviewer', 'ClusterRoleBinding/keyhold-webhook',
      'ConfigMap/keyhold-config', 'Deployment/keyhold', 'Deployment/keyhold-webhook', 'MutatingWebhookConfiguration/keyhold-injector',
      'NetworkPolicy/keyhold', 'NetworkPolicy/keyhold-webhook', 'PodDisruptionBudget/keyhold',
      'Service/keyhold', 'Service/keyhold-webhook', 'ServiceAccount/keyhold', 'ServiceAccount/keyhold-reviewer', 'ServiceAccount/keyhold-webhook',
    ].sort());
    // Everything on: the HSM endpoint ConfigMap, the reviewer's token Secret, the ServiceMonitor, a
    // webhook PodDisruptionBudget (two replicas), and no webhook ClusterRole (certificates from a Secret).
    const everything = names('everything');
    for (const n of ['ConfigMap/keyhold-hsm-endpoint', 'Secret/keyhold-login-reviewer-token', 'ServiceMonitor/keyhold', 'PodDisruptionBudget/keyhold-webhook']) assert.ok(everything.includes(n), `${n} in ${everything.join(', ')}`);
    assert.ok(!everything.includes('ClusterRole/keyhold-webhook'), 'no API access for a webhook with certificate files');
    assert.deepEqual(names('minimal'), ['ConfigMap/keyhold-config', 'Deployment/keyhold', 'Service/keyhold']);
    // fullnameOverride names everything, except the service account named explicitly.
    const alternatives = names('alternatives').filter((n) => n !== 'ServiceAccount/keyhold-server');
    assert.equal(alternatives.length, names('alternatives').length - 1);
    assert.ok(alternatives.every((n) => n.split('/')[1]?.startsWith('vault-replacement')), alternatives.join(', '));

    const defaults = rendered.get('defaults') ?? [];
    const server = find<V1Deployment>(defaults, 'Deployment', 'keyhold')[0];
    assert.equal(server?.spec?.replicas, 3);
    assert.equal(server?.spec?.template.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(server?.spec?.strategy?.rollingUpdate, { maxSurge: 0, maxUnavailable: 1 });
    const c = server?.spec?.template.spec?.containers[0];
    assert.equal(c?.readinessProbe?.httpGet?.path, '/v1/sys/health');
    assert.equal(c?.startupProbe?.httpGet?.path, '/v1/sys/health');
    // Liveness must not fail on health's 503 (HSM or audit down): a restart would fix neither.
    assert.notEqual(c?.livenessProbe?.httpGet?.path, '/v1/sys/health');
    const pdb = find(defaults, 'PodDisruptionBudget', 'keyhold')[0];
    assert.deepEqual(pdb?.spec, { maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow', selector: server?.spec?.selector });
    assert.deepEqual(find(defaults, 'Service', 'keyhold')[0]?.spec?.selector, server?.spec?.selector?.matchLabels);

    const monitor = find(rendered.get('everything') ?? [], 'ServiceMonitor')[0];
    const service = find(rendered.get('everything') ?? [], 'Service', 'keyhold')[0];
    assert.equal(monitor?.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual(monitor?.spec?.endpoints, [{ port: 'http', path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '5s' }]);
    for (const [k, v] of Object.entries(monitor?.spec?.selector?.matchLabels as Record<string, string>)) assert.equal(service?.metadata?.labels?.[k], v, `the ServiceMonitor selects the Service by ${k}`);
    assert.ok((service?.spec?.ports as Array<{ name: string }>).some((p) => p.name === 'http'));
  });

  it('creates every rendered object with a server-side dry-run on a real kube-apiserver', async () => {
    const failures: string[] = [];
    let created = 0;
    for (const set of SETS) {
      for (const object of rendered.get(set.name) ?? []) {
        // The ServiceMonitor's CRD comes with Prometheus Operator, which this control plane does not
        // have: it is checked from the render above (selector, port, path) and by helm lint only.
        if (NO_CRD_HERE.has(kindOf(object))) continue;
        try {
          const back = await objects.create(object, undefined, 'All');
          assert.equal(back.metadata?.name, object.metadata?.name);
          created++;
        } catch (err) {
          const e = err as { code?: number; body?: string; message?: string };
          failures.push(`${set.name}: ${kindOf(object)} ${object.metadata?.name}: ${e.code ?? ''} ${e.body ?? e.message}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(created >= 50, `${created} objects dry-run`);
    // Nothing was stored.
    const deployments = await objects.list('apps/v1', 'Deployment', NS);
    assert.deepEqual(deployments.items, []);
  });

  it('the KMS plugin static pod passes a dry-run as the mirror pod the kubelet posts for it', async () => {
    const [pod, ...rest] = yamlFile(join(KMS_DIR, 'keyhold-kms-plugin.yaml')) as V1Pod[];
    assert.equal(rest.length, 0);
    assert.equal(pod?.kind, 'Pod');
    // As the kubelet posts it: bound to its node, with the mirror annotations. kube-apiserver then
    // also enforces what a static pod cannot have (service account, Secret or ConfigMap volumes).
    const mirror: V1Pod = {
      ...pod,
      metadata: { ...pod?.metadata, name: `${pod?.metadata?.name}-cp-1`, annotations: { 'kubernetes.io/config.mirror': 'c0ffee', 'kubernetes.io/config.hash': 'c0ffee', 'kubernetes.io/config.source': 'file' } },
      spec: { ...pod?.spec, nodeName: 'cp-1' } as V1Pod['spec'],
    };
    const back = await objects.create(mirror as KubernetesObject, undefined, 'All') as V1Pod;
    assert.equal(back.spec?.priorityClassName, 'system-node-critical');
    assert.equal(back.spec?.priority, 2000001000, 'kube-apiserver resolved the priority class');
    const c = pod?.spec?.containers[0];
    const flags = c?.command ?? [];
    for (const f of ['--listen=/var/run/keyhold/kms.sock', '--health-listen=127.0.0.1:8787']) assert.ok(flags.includes(f), f);
    assert.ok(flags.some((f) => f.startsWith('--hsm-pin-file=')), 'the PIN from a file, never argv');
    assert.ok(!flags.some((f) => /--hsm-pin=|pin=\d/.test(f)));
    assert.deepEqual(c?.securityContext?.capabilities?.drop, ['ALL']);
    assert.equal(c?.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(c?.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(c?.securityContext?.seccompProfile?.type, 'RuntimeDefault');

    // The EncryptionConfiguration names the socket the static pod serves.
    const [enc] = yamlFile(join(KMS_DIR, 'encryption-configuration.yaml')) as Array<KubernetesObject & { resources: Array<{ resources: string[]; providers: any[] }> }>;
    assert.equal(enc?.kind, 'EncryptionConfiguration');
    const kms = enc?.resources[0]?.providers[0]?.kms;
    assert.deepEqual({ apiVersion: kms?.apiVersion, endpoint: kms?.endpoint }, { apiVersion: 'v2', endpoint: 'unix:///var/run/keyhold/kms.sock' });
    assert.ok(pod?.spec?.volumes?.some((v) => v.hostPath?.path === '/var/run/keyhold'));
  });

  it('every keyhold container runs as non-root, read-only, with no capability and the RuntimeDefault seccomp profile', () => {
    for (const set of SETS) {
      for (const d of find<V1Deployment>(rendered.get(set.name) ?? [], 'Deployment')) {
        const pod = d.spec?.template.spec;
        assert.equal(pod?.securityContext?.runAsNonRoot, true, `${set.name} ${d.metadata?.name}`);
        assert.equal(pod?.securityContext?.seccompProfile?.type, 'RuntimeDefault');
        assert.ok(!pod?.hostNetwork && !pod?.hostPID && !pod?.hostIPC);
        for (const c of containersOf(d)) {
          const where = `${set.name} ${d.metadata?.name}/${c.name}`;
          const sc = c.securityContext;
          assert.equal(sc?.runAsNonRoot, true, where);
          assert.ok((sc?.runAsUser ?? 0) > 0, where);
          assert.equal(sc?.readOnlyRootFilesystem, true, where);
          assert.equal(sc?.allowPrivilegeEscalation, false, where);
          assert.notEqual(sc?.privileged, true, where);
          assert.deepEqual(sc?.capabilities, { drop: ['ALL'] }, where);
          assert.equal(sc?.seccompProfile?.type, 'RuntimeDefault', where);
        }
      }
      // The server calls no Kubernetes API as itself: no token in its pods.
      for (const d of find<V1Deployment>(rendered.get(set.name) ?? [], 'Deployment').filter((x) => x.spec?.template.metadata?.labels?.['app.kubernetes.io/component'] === 'server')) {
        assert.equal(d.spec?.template.spec?.automountServiceAccountToken, false, set.name);
      }
    }
  });

  it('no secret reaches a ConfigMap: the database password and the PIN come only from Secrets, as files', () => {
    const everything = rendered.get('everything') ?? [];
    const server = find<V1Deployment>(everything, 'Deployment', 'keyhold')[0];
    const config = parseYaml(find<V1ConfigMap>(everything, 'ConfigMap', 'keyhold-config')[0]?.data?.['keyhold.yaml'] ?? '') as any;
    const volumes = server?.spec?.template.spec?.volumes ?? [];
    const mounts = server?.spec?.template.spec?.containers[0]?.volumeMounts ?? [];
    /** The Secret (name, key) mounted at `file`. */
    const secretAt = (file: string) => {
      const mount = mounts.find((m) => file.startsWith(`${m.mountPath}/`));
      const volume = volumes.find((v) => v.name === mount?.name);
      const item = volume?.secret?.items?.find((i) => `${mount?.mountPath}/${i.path}` === file);
      return volume?.secret && item ? { secret: volume.secret.secretName, key: item.key } : undefined;
    };
    assert.deepEqual(secretAt(config.storage.postgres.passwordFile), { secret: 'keyhold-db', key: 'db-password' });
    assert.deepEqual(secretAt(config.hsm.pinFile), { secret: 'hsm-credentials', key: 'user-pin' });
    assert.deepEqual(secretAt(config.storage.postgres.tls.keyFile), { secret: 'keyhold-db-client', key: 'tls.key' });
    assert.equal(config.hsm.pinEnv, undefined);
    assert.equal(config.storage.postgres.passwordEnv, undefined);
    assert.doesNotMatch(config.storage.postgres.url, /:\/\/[^/@]*:[^/@]*@/, 'no password in the URL');

    for (const set of SETS) {
      const all = rendered.get(set.name) ?? [];
      for (const cm of find<V1ConfigMap>(all, 'ConfigMap')) {
        const text = JSON.stringify(cm.data ?? {});
        // Only file paths to secrets: pinFile and passwordFile, never pin/password themselves.
        assert.doesNotMatch(text, /"?(pin|password|passwd|secret|token)"?\s*[:=]/i, `${set.name} ConfigMap ${cm.metadata?.name}: ${text}`);
        assert.doesNotMatch(text, /BEGIN [A-Z ]*PRIVATE KEY/);
      }
      // No literal value in any container's environment looks like a credential.
      for (const d of find<V1Deployment>(all, 'Deployment')) {
        for (const c of containersOf(d)) {
          for (const e of c.env ?? []) assert.ok(!/PIN|PASSWORD|SECRET|TOKEN/i.test(e.name) || e.value === undefined, `${set.name} ${c.name} env ${e.name}`);
          assert.ok(!(c.command ?? []).some((a) => /pin=|password=/i.test(a)), `${set.name} ${c.name} argv`);
        }
      }
    }
  });

  it('refuses values that would put a secret in a ConfigMap, or that cannot work', async () => {
    assert.match(await refusal(['--set', 'postgresql.url=postgres://keyhold:hunter2@db:5432/keyhold']), /must not carry a password/);
    assert.match(await refusal(['--set', 'postgresql.url=postgres://keyhold@db/keyhold?password=hunter2']), /must not have query parameters/);
    assert.match(await refusal(['--set', 'postgresql.password.existingSecret=']), /password comes from a Secret/);
    assert.match(await refusal(['--set', 'hsm.pin.existingSecret=']), /PIN comes from a Secret/);
    assert.match(await refusal(['--set', 'hsm.endpoint.env.HSM_PIN=1234']), /looks like a secret/);
    assert.match(await refusal(['--set', 'injector.replicas=2']), /selfManaged serves one replica/);
    assert.match(await refusal(['--set', 'injector.tls.mode=secret', '--set', 'injector.tls.secretName=tls']), /caBundle/);
    assert.match(await refusal(['--set', 'operator.enabled=true', '--set', 'operator.allowCommands={sh}']), /operator\/allowCommands\/0|does not match pattern/);
    // values.schema.json: a misspelt option fails instead of being ignored (here: the password's Secret).
    assert.match(await refusal(['--set', 'postgresql.passwrod.existingSecret=db']), /additional properties 'passwrod' not allowed/);
    assert.match(await refusal(['--set', 'injector.tls.mode=files']), /injector\/tls\/mode|value must be one of/);
    // The disabled operator renders nothing, not even its CRD.
    assert.ok(existsSync(join(CHART, 'templates/operator/operator.yaml')));
    const r = await helm(['template', RELEASE, CHART, '--namespace', NS]);
    assert.ok(r.ok, r.stderr);
    assert.ok(!r.stdout.includes('templates/operator/'), 'the disabled operator renders nothing');
    assert.ok(!r.stdout.includes('CustomResourceDefinition'), 'and no CRD');
  });

  it('renders keyhold\'s own config format, which keyhold\'s validator accepts', () => {
    // The whole rendered config goes through keyhold's own validator, storage.postgres included.
    const POSTGRES_FIELDS = ['url', 'passwordFile', 'passwordEnv', 'tls', 'pool'];
    for (const set of SETS) {
      for (const cm of find<V1ConfigMap>(rendered.get(set.name) ?? [], 'ConfigMap').filter((x) => x.metadata?.name?.endsWith('-config'))) {
        const config = parseYaml(cm.data?.['keyhold.yaml'] ?? '') as { storage: { postgres: Record<string, any> } } & Record<string, unknown>;
        const pg = config.storage.postgres;
        assert.ok(pg && typeof pg.url === 'string', set.name);
        for (const field of Object.keys(pg)) assert.ok(POSTGRES_FIELDS.includes(field), `${set.name}: storage.postgres.${field}`);
        for (const field of Object.keys(pg.tls ?? {})) assert.ok(['caFile', 'certFile', 'keyFile', 'serverName'].includes(field), `${set.name}: storage.postgres.tls.${field}`);
        // On PostgreSQL the audit log is the database's table: no file for the pod to lose.
        assert.equal((config.audit as { path?: string } | undefined)?.path, undefined, `${set.name}: no audit file`);
        assert.doesNotThrow(() => validateConfig(config, `${set.name} ConfigMap`), set.name);
      }
    }
    const everything = parseYaml(find<V1ConfigMap>(rendered.get('everything') ?? [], 'ConfigMap', 'keyhold-config')[0]?.data?.['keyhold.yaml'] ?? '') as any;
    assert.deepEqual(everything.tokens, { maxTtlSeconds: 86400 }, 'server.config is merged in');
    assert.equal(everything.audit.checkpointEvery, 500);
    assert.deepEqual(everything.api.trustedProxies, ['10.42.7.0/24', 'fd00:42:7::/64'], 'the ingress controller\'s addresses reach the config, and the validator accepted them');
    assert.equal(everything.hsm.slot, '123456');
    assert.deepEqual(everything.storage.postgres.tls, { caFile: '/etc/keyhold/postgresql-ca/ca.crt', certFile: '/etc/keyhold/postgresql-client/tls.crt', keyFile: '/etc/keyhold/postgresql-client/tls.key', serverName: 'pg-rw.databases.svc' });
  });

  it('renders the operator exactly as `keyhold operator manifests` prints it: the CRD, and RBAC with no more than the operator uses', async () => {
    const everything = rendered.get('everything') ?? [];
    const [crd] = find(everything, 'CustomResourceDefinition');
    assert.deepEqual(crd?.spec, hsmClusterCrd().spec);
    assert.equal(crd?.metadata?.annotations?.['helm.sh/resource-policy'], 'keep', 'uninstalling the chart does not delete every HSMCluster');
    assert.deepEqual(find(everything, 'Role', 'keyhold-operator')[0]?.rules, NAMESPACE_RULES);
    assert.deepEqual(find(everything, 'ClusterRole', 'keyhold-operator')[0]?.rules, CLUSTER_RULES);
    const [deployment] = find<V1Deployment>(everything, 'Deployment', 'keyhold-operator');
    const c = deployment?.spec?.template.spec?.containers[0];
    assert.equal(deployment?.spec?.template.spec?.serviceAccountName, 'keyhold-hsm-operator');
    assert.deepEqual(c?.command, ['keyhold', 'operator', 'run', `--namespace=${NS}`, '--period=10', '--log-level=debug', '--node-label=example.com/local-hsm', '--allow-command=/usr/local/bin/cloudhsm-endpoints']);
    for (const b of [...find(everything, 'RoleBinding', 'keyhold-operator'), ...find(everything, 'ClusterRoleBinding', 'keyhold-operator')]) {
      assert.deepEqual((b as any).subjects, [{ kind: 'ServiceAccount', name: 'keyhold-hsm-operator', namespace: NS }]);
    }
    // Without node capacity, no cluster-wide permission at all.
    const noNodes = await render([], ['--set', 'operator.enabled=true', '--set', 'operator.nodeResource.enabled=false']);
    assert.deepEqual(find(noNodes, 'ClusterRole').map((r) => r.metadata?.name).filter((n) => n?.includes('operator')), []);
    assert.ok(find<V1Deployment>(noNodes, 'Deployment', 'keyhold-operator')[0]?.spec?.template.spec?.containers[0]?.command?.includes('--no-node-resource'));
  });

  it('registers the webhook exactly as `keyhold webhook manifests` does', () => {
    const [chart] = find<V1MutatingWebhookConfiguration>(rendered.get('defaults') ?? [], 'MutatingWebhookConfiguration');
    const code = webhookConfiguration({ namespace: NS, service: { name: 'keyhold-webhook' }, caBundlePem: 'x' }) as unknown as V1MutatingWebhookConfiguration;
    const withoutCa = (w: V1MutatingWebhookConfiguration | undefined) => w?.webhooks?.map((h) => ({ ...h, clientConfig: { ...h.clientConfig, caBundle: undefined } }));
    assert.deepEqual(withoutCa(chart), withoutCa(code));
    // Self-managed TLS: no caBundle in the manifest (the webhook publishes it, and helm upgrade leaves it).
    assert.equal(chart?.webhooks?.[0]?.clientConfig.caBundle, undefined);
  });

  it('the RBAC is exactly what keyhold uses: keyhold accepts the reviewer, and the webhook publishes its CA', async () => {
    // The reviewer's ClusterRole holds what keyhold asks SelfSubjectAccessReview about, and nothing more.
    const [role] = find<V1ClusterRole>(rendered.get('defaults') ?? [], 'ClusterRole', 'keyhold-reviewer');
    const granted = (role?.rules ?? []).flatMap((r) => r.verbs.flatMap((verb) => [...(r.resources ?? []).map((resource) => `${verb} ${resource}`), ...(r.nonResourceURLs ?? []).map((path) => `${verb} ${path}`)]));
    const needed = loginAccess({}).map((a) => ('resource' in a ? `${a.verb} ${a.resource}` : `${a.verb} ${a.path}`));
    assert.deepEqual(granted.sort(), needed.sort());
    assert.ok((role?.rules ?? []).every((r) => (r.apiGroups ?? ['']).every((g) => g === '')));

    // Installed for real (in a namespace of its own, webhook failurePolicy Ignore so that this
    // cluster's other pods never wait on a webhook that does not run).
    const ns = 'keyhold-rbac';
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const install = await render([], ['--set', 'injector.failurePolicy=Ignore'], ns, 'rbac');
    for (const o of install) await objects.create(o);
    const tokenOf = (name: string) => serviceAccountToken(core, { namespace: ns, name }, { audiences: [], expirationSeconds: 3600 });

    // keyhold's own check (SelfSubjectAccessReview for everything login needs) accepts the reviewer…
    const dev: DevServer = await startDev(tempDir('keyhold-helm-rbac-'));
    try {
      const accepted = await call(dev.address, 'PUT', '/v1/auth/kubernetes/config', dev.rootToken, loginConfig(cp, await tokenOf('rbac-keyhold-reviewer')));
      assert.equal(accepted.status, 204, accepted.text);
      // …and the server's own service account holds nothing.
      const refused = await call(dev.address, 'PUT', '/v1/auth/kubernetes/config', dev.rootToken, loginConfig(cp, await tokenOf('rbac-keyhold')));
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.body.error.code, 'ERR_KUBERNETES_PERMISSIONS');
    } finally {
      await dev.stop();
    }

    // The self-managed webhook, as its service account, publishes its CA to its own configuration…
    const asWebhook = tokenKubeConfig(cp.kubeConfig, await tokenOf('rbac-keyhold-webhook'));
    const pem = `${cp.caPem.trim()}\n`;
    await caBundlePublisher(asWebhook, 'rbac-keyhold-injector')(pem);
    const published = await objects.read({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'rbac-keyhold-injector' } }) as V1MutatingWebhookConfiguration;
    assert.equal(Buffer.from(published.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString(), pem);
    // …and to no other.
    await objects.create({ ...webhookConfiguration({ namespace: ns, service: { name: 'x' }, caBundlePem: pem, name: 'someone-else' }), webhooks: [] } as KubernetesObject);
    await assert.rejects(caBundlePublisher(asWebhook, 'someone-else')(pem), (err: { code?: number }) => err.code === 403);
  });
  it('hsm.endpointsConfigMap: the server watches the operator\'s ConfigMap as itself, with a Role for exactly that ConfigMap, and a config keyhold accepts', async () => {
    const defaults = rendered.get('defaults') ?? [];
    assert.equal(find<V1Deployment>(defaults, 'Deployment', 'keyhold')[0]?.spec?.template.spec?.automountServiceAccountToken, false, 'no token without it');
    assert.deepEqual(find(defaults, 'Role').map((r) => r.metadata?.name).filter((n) => n?.includes('hsm-endpoints')), []);

    const ns = 'keyhold-endpoints';
    const objectsOf = await render([], ['--set', 'hsm.endpointsConfigMap=hsm-endpoints'], ns, 'ep');
    const [role] = find(objectsOf, 'Role', 'ep-keyhold-hsm-endpoints');
    assert.deepEqual(role?.rules, endpointConfigMapRules('hsm-endpoints'));
    const [binding] = find(objectsOf, 'RoleBinding', 'ep-keyhold-hsm-endpoints');
    assert.deepEqual((binding as any).subjects, [{ kind: 'ServiceAccount', name: 'ep-keyhold', namespace: ns }]);
    const [deployment] = find<V1Deployment>(objectsOf, 'Deployment', 'ep-keyhold');
    assert.equal(deployment?.spec?.template.spec?.automountServiceAccountToken, true);
    const config = parseYaml(find<V1ConfigMap>(objectsOf, 'ConfigMap', 'ep-keyhold-config')[0]?.data?.['keyhold.yaml'] ?? '') as any;
    assert.deepEqual(config.hsm.endpoints, { configMap: { namespace: ns, name: 'hsm-endpoints' } });
    assert.deepEqual(config.hsm.memberTemplate, { module: '/usr/lib/softhsm/libsofthsm2.so', pinFile: '/etc/keyhold/hsm-pin/pin', tokenLabel: 'keyhold', env: { P11_KIT_SERVER_ADDRESS: '${address}' } });
    assert.equal(config.hsm.module, undefined);
    assert.doesNotThrow(() => validateConfig(config, 'endpointsConfigMap ConfigMap'));

    // Installed for real: as the server's service account, the watch reads that ConfigMap and no other.
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    for (const o of [...find(objectsOf, 'ServiceAccount', 'ep-keyhold'), role!, binding!]) await objects.create(o);
    const doc = (names: string[]) => JSON.stringify({ cluster: 'c', endpoints: names.map((n) => ({ name: n, address: `unix:path=/run/${n}.sock` })) });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'hsm-endpoints' }, data: { 'endpoints.json': doc(['a']) } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'other' }, data: { 'endpoints.json': doc(['x']) } } });
    const asServer = tokenKubeConfig(cp.kubeConfig, await serviceAccountToken(core, { namespace: ns, name: 'ep-keyhold' }, { audiences: [], expirationSeconds: 3600 }));
    const kubeconfig = join(tempDir('keyhold-helm-endpoints-'), 'kubeconfig');
    writeFileSync(kubeconfig, asServer.exportConfig(), { mode: 0o600 });
    const seen: HsmEndpointSet[] = [];
    const errors: string[] = [];
    const watch = await watchEndpointConfigMap({ namespace: ns, name: 'hsm-endpoints', kubeconfig }, (set) => seen.push(set), (err) => errors.push(err.message));
    try {
      await pollUntil('the first set', () => seen.length === 1);
      assert.deepEqual(seen[0]?.endpoints.map((e) => e.name), ['a']);
      await core.patchNamespacedConfigMap({ namespace: ns, name: 'hsm-endpoints', body: [{ op: 'replace', path: '/data/endpoints.json', value: doc(['a', 'b']) }] });
      await pollUntil('the change', () => seen.length === 2);
      assert.equal(errors.length, 0, errors.join('\n'));
    } finally {
      watch.stop();
    }
    const other = await watchEndpointConfigMap({ namespace: ns, name: 'other', kubeconfig, retryMs: 60_000 }, (set) => seen.push(set), (err) => errors.push(err.message));
    other.stop();
    assert.equal(seen.length, 2, 'nothing read of another ConfigMap');
    assert.match(errors.join('\n'), /HTTP 403/);
  });
});
