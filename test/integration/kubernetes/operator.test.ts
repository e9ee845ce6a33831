/**
 * `keyhold operator` against a real kube-apiserver: the manifests it prints are applied (CRD
 * established, least-privilege RBAC), the operator runs as a real process AS its service account,
 * and discovers real p11-kit servers (static and command sources) and TCP listeners named by a real
 * DNS server on loopback (dns2: A and SRV records). Kills and additions of members show in the
 * ConfigMap, status and Events; nodes marked for a local HSM get keyhold.io/hsm capacity.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import dns2 from 'dns2';
import { parseAllDocuments } from 'yaml';
import { ENDPOINTS_KEY, parseEndpointSet, type HsmEndpoint, type HsmEndpointSet } from '../../../src/hsm/endpoint-set.js';
import { endpointConfigMapRules, watchEndpointConfigMap } from '../../../src/hsm/endpoint-configmap.js';
import { CLUSTER_RULES, NAMESPACE_RULES } from '../../../src/kubernetes/operator/manifests.js';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { kubeRequest, KubeRequestError, tokenKubeConfig, type KubeRequest } from '../../helpers/kube-request.js';
import { serviceAccountToken } from '../../helpers/kubernetes-login.js';
import { p11KitClientModule, startP11KitFleet, type P11KitFleet } from '../../helpers/p11kit.js';
import { freePorts, sleep, spawnUntilReady, type WatchedProcess } from '../../helpers/processes.js';
import { CLI, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from '../server/support.js';
import { pollUntil } from '../../helpers/wait.js';

const execFileAsync = promisify(execFile);
const NS = 'keyhold';
const CLUSTERS = `/apis/keyhold.io/v1alpha1/namespaces/${NS}/hsmclusters`;
/** Probe period of the clusters below, in seconds. */
const PERIOD = 1;

const { Packet } = dns2;

describe('keyhold operator with a real kube-apiserver, p11-kit members and a DNS server', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let admin: KubeRequest;
  let fleet: P11KitFleet;
  let operator: WatchedProcess;
  let operatorToken: string;
  let dir: string;
  let dnsServer: ReturnType<typeof dns2.createServer>;
  let dnsPort: number;
  /** name → A addresses / SRV targets the DNS server answers (changed by tests). */
  const aRecords = new Map<string, string[]>();
  const srvRecords = new Map<string, { target: string; port: number }[]>();
  const listeners: Server[] = [];
  let applied: Record<string, any>[];

  /** A kubeconfig file for a bearer token (a service account's), as a pod's would be. */
  function writeKubeconfig(file: string, token: string): string {
    writeFileSync(file, tokenKubeConfig(cp.kubeConfig, token).exportConfig(), { mode: 0o600 });
    return file;
  }
  /** A service account that may get/list/watch exactly one ConfigMap (endpointConfigMapRules), and a kubeconfig for it. */
  async function serverAccount(account: string, configMap: string): Promise<{ token: string; kubeconfig: string }> {
    await admin('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { metadata: { name: account } });
    await admin('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, { metadata: { name: account }, rules: endpointConfigMapRules(configMap) });
    await admin('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
      metadata: { name: account },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: account },
      subjects: [{ kind: 'ServiceAccount', name: account, namespace: NS }],
    });
    const token = await serviceAccountToken(cp.kubeConfig.makeApiClient(CoreV1Api), { namespace: NS, name: account }, { audiences: [], expirationSeconds: 3600 });
    return { token, kubeconfig: writeKubeconfig(join(dir, `${account}.kubeconfig`), token) };
  }
  const endpoint = (m: { name: string; address: string }): HsmEndpoint => ({ name: m.name, address: m.address });

  async function configMapSet(name: string): Promise<HsmEndpointSet | undefined> {
    try {
      const cm = await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/${name}`);
      return parseEndpointSet(cm.data[ENDPOINTS_KEY]);
    } catch (err) {
      if (err instanceof KubeRequestError && err.status === 404) return undefined;
      throw err;
    }
  }
  const names = (set: HsmEndpointSet | undefined) => set?.endpoints.map((e) => e.name);
  /** Waits until the ConfigMap lists exactly `expected` (names), returns the set and how long it took. */
  async function waitForNames(configMap: string, expected: string[], timeoutMs = 20_000): Promise<{ set: HsmEndpointSet; ms: number }> {
    const start = Date.now();
    let last: HsmEndpointSet | undefined;
    const set = await pollUntil(`ConfigMap ${configMap} to list ${expected.join(', ')}`, async () => {
      last = await configMapSet(configMap);
      return JSON.stringify(names(last)) === JSON.stringify(expected) ? last : undefined;
    }, { timeoutMs, intervalMs: 100, detail: () => `last: ${JSON.stringify(last)}\noperator:\n${operator.output().slice(-3000)}` });
    return { set, ms: Date.now() - start };
  }
  const getCluster = (name: string) => admin<any>('GET', `${CLUSTERS}/${name}`);
  const createCluster = (name: string, spec: Record<string, unknown>) => admin<any>('POST', CLUSTERS, { apiVersion: 'keyhold.io/v1alpha1', kind: 'HSMCluster', metadata: { name, namespace: NS }, spec });
  const condition = (cluster: any, type: string) => (cluster.status?.conditions ?? []).find((c: any) => c.type === type);
  async function events(name: string): Promise<any[]> {
    const list = await admin<any>('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}`);
    return list.items;
  }

  /** A TCP listener standing in for a network HSM's port (closed: the member is down). */
  async function listen(host: string, port: number): Promise<Server> {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(port, host, res); });
    listeners.push(server);
    return server;
  }

  before(async () => {
    dir = tempDir('keyhold-operator-');
    cp = await startControlPlane();
    admin = kubeRequest(cp.kubeConfig);
    fleet = await startP11KitFleet(2);

    // A real DNS server on loopback answering from the maps above.
    dnsServer = dns2.createServer({
      udp: true,
      handle: (request, send) => {
        const response = Packet.createResponseFromRequest(request);
        const [question] = request.questions;
        const name = question?.name.toLowerCase() ?? '';
        if (question?.type === Packet.TYPE.A) {
          for (const address of aRecords.get(name) ?? []) response.answers.push({ name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 1, address } as any);
        } else if (question?.type === Packet.TYPE.SRV) {
          for (const r of srvRecords.get(name) ?? []) response.answers.push({ name, type: Packet.TYPE.SRV, class: Packet.CLASS.IN, ttl: 1, priority: 10, weight: 10, port: r.port, target: r.target } as any);
        }
        if (!aRecords.has(name) && !srvRecords.has(name)) response.header.rcode = 3; // NXDOMAIN
        void send(response);
      },
    });
    const addresses = await dnsServer.listen({ udp: { port: 0, address: '127.0.0.1' } } as any);
    dnsPort = (addresses.udp ?? dnsServer.addresses().udp)!.port;

    // Apply what `keyhold operator manifests` prints, as an administrator would.
    const { stdout } = await execFileAsync(process.execPath, [CLI, 'operator', 'manifests', '--namespace', NS, '--allow-command', process.execPath]);
    applied = parseAllDocuments(stdout).map((d) => d.toJS());
    await admin('POST', '/api/v1/namespaces', { metadata: { name: NS } });
    const path = (o: any) => {
      const ns = o.metadata.namespace;
      switch (o.kind) {
        case 'CustomResourceDefinition': return '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
        case 'ServiceAccount': return `/api/v1/namespaces/${ns}/serviceaccounts`;
        case 'Role': case 'RoleBinding': return `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${o.kind.toLowerCase()}s`;
        case 'ClusterRole': case 'ClusterRoleBinding': return `/apis/rbac.authorization.k8s.io/v1/${o.kind.toLowerCase()}s`;
        case 'Deployment': return `/apis/apps/v1/namespaces/${ns}/deployments`;
        default: throw new Error(`unexpected kind ${o.kind}`);
      }
    };
    for (const o of applied) await admin('POST', path(o), o);
    await pollUntil('the HSMCluster CRD to be established', async () => {
      const crd = await admin<any>('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/hsmclusters.keyhold.io');
      return crd.status?.conditions?.some((c: any) => c.type === 'Established' && c.status === 'True');
    }, { timeoutMs: 30_000 });
    // The resource is served a moment after Established.
    await pollUntil('hsmclusters to be served', () => admin('GET', CLUSTERS).then(() => true, () => false), { timeoutMs: 30_000 });

    // The operator runs as its own service account, with only what the manifests grant.
    operatorToken = await serviceAccountToken(cp.kubeConfig.makeApiClient(CoreV1Api), { namespace: NS, name: 'keyhold-operator' }, { audiences: [], expirationSeconds: 3600 });
    const kubeconfig = writeKubeconfig(join(dir, 'operator.kubeconfig'), operatorToken);
    operator = await spawnUntilReady('keyhold operator', process.execPath, [CLI, 'operator', 'run', '--kubeconfig', kubeconfig, '--namespace', NS, '--period', '2', '--allow-command', process.execPath, '--log-level', 'debug'], { ready: /operator watching HSMClusters/ });
  });

  after(async () => {
    await operator?.stop();
    await fleet?.stop();
    await dnsServer?.close();
    for (const l of listeners) l.close();
    await cp?.stop();
  });

  it('the printed manifests apply: the CRD is established with a status subresource and printer columns, RBAC is exactly the verbs the operator uses', async () => {
    const crd = await admin<any>('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/hsmclusters.keyhold.io');
    const version = crd.spec.versions[0];
    assert.deepEqual(version.subresources, { status: {} });
    assert.ok(version.additionalPrinterColumns.some((c: any) => c.name === 'Ready'));
    const role = await admin<any>('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/keyhold-operator`);
    assert.deepEqual(role.rules, NAMESPACE_RULES);
    assert.deepEqual(role.rules.map((r: any) => `${r.resources}:${r.verbs}`), ['hsmclusters:get,list,watch', 'hsmclusters/status:patch', 'configmaps:get,create,update', 'events:create']);
    const clusterRole = await admin<any>('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/keyhold-operator');
    assert.deepEqual(clusterRole.rules, CLUSTER_RULES);
    assert.deepEqual(applied.map((o) => o.kind), ['CustomResourceDefinition', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'Deployment']);
    // A spec the schema refuses never reaches the operator.
    await assert.rejects(createCluster('bad', { sources: [{ dns: { name: 'x', type: 'MX' } }], configMap: { name: 'bad' } }), (err: KubeRequestError) => err instanceof KubeRequestError && err.status === 422);
    await assert.rejects(createCluster('bad', { sources: [{ static: { endpoints: [] }, dns: { name: 'x', type: 'A' } }], configMap: { name: 'bad' } }), (err: KubeRequestError) => err instanceof KubeRequestError && err.status === 422);
  });

  it('the operator\'s service account cannot read Secrets, delete ConfigMaps or write HSMCluster specs and node specs', async () => {
    const asOperator = kubeRequest(tokenKubeConfig(cp.kubeConfig, operatorToken));
    {
      await admin('POST', `/api/v1/namespaces/${NS}/secrets`, { metadata: { name: 'hsm-pin' }, stringData: { pin: '1234' } });
      await admin('POST', `/api/v1/namespaces/${NS}/configmaps`, { metadata: { name: 'other' }, data: { a: 'b' } });
      await admin('POST', '/api/v1/nodes', { metadata: { name: 'plain-node' } });
      const forbidden = async (method: string, path: string, body?: unknown, type?: string) => {
        await assert.rejects(asOperator(method, path, body, type), (err: KubeRequestError) => err instanceof KubeRequestError && err.status === 403, `${method} ${path} must be forbidden`);
      };
      await forbidden('GET', `/api/v1/namespaces/${NS}/secrets/hsm-pin`);
      await forbidden('GET', `/api/v1/namespaces/${NS}/secrets`);
      await forbidden('GET', '/api/v1/secrets');
      await forbidden('GET', `/api/v1/namespaces/${NS}/configmaps`); // no list: it reads its own by name
      await forbidden('DELETE', `/api/v1/namespaces/${NS}/configmaps/other`);
      await forbidden('GET', '/api/v1/namespaces/default/configmaps/anything');
      await forbidden('PATCH', '/api/v1/nodes/plain-node', { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json');
      await forbidden('POST', CLUSTERS, { apiVersion: 'keyhold.io/v1alpha1', kind: 'HSMCluster', metadata: { name: 'x' }, spec: { sources: [{ static: { endpoints: [] } }], configMap: { name: 'x' } } });
      await forbidden('GET', '/api/v1/pods');
      // What it needs, it may.
      await asOperator('GET', `/api/v1/namespaces/${NS}/configmaps/other`);
      await asOperator('GET', '/api/v1/nodes/plain-node');
    }
  });

  it('static source: the healthy p11-kit members go into the ConfigMap (sorted, owned by the HSMCluster); status and Events say what happened', async () => {
    const [a, b] = fleet.members;
    const created = await createCluster('static', {
      sources: [{ static: { endpoints: [endpoint(b!), { name: 'ghost', address: `unix:path=${join(dir, 'nothing.sock')}` }, endpoint(a!)] } }],
      probe: { periodSeconds: PERIOD, timeoutSeconds: 1 },
      configMap: { name: 'hsm-static' },
    });
    const { set } = await waitForNames('hsm-static', ['a', 'b']);
    assert.deepEqual(set, { cluster: 'static', endpoints: [endpoint(a!), endpoint(b!)] });
    const cm = await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/hsm-static`);
    assert.deepEqual(cm.metadata.ownerReferences, [{ apiVersion: 'keyhold.io/v1alpha1', kind: 'HSMCluster', name: 'static', uid: created.metadata.uid, controller: true }]);
    assert.deepEqual(Object.keys(cm.data), [ENDPOINTS_KEY]);

    const cluster = await pollUntil('status', async () => { const c = await getCluster('static'); return c.status?.members ? c : undefined; });
    assert.equal(cluster.status.observedGeneration, cluster.metadata.generation);
    assert.equal(cluster.status.healthyMembers, 2);
    assert.equal(cluster.status.totalMembers, 3);
    assert.deepEqual(cluster.status.members.map((m: any) => [m.name, m.healthy]), [['a', true], ['b', true], ['ghost', false]]);
    const ghost = cluster.status.members.find((m: any) => m.name === 'ghost');
    assert.equal(ghost.lastError, 'ENOENT');
    assert.ok(Date.parse(ghost.lastProbe) > 0 && Date.parse(cluster.status.lastProbeTime) > 0);
    assert.equal(typeof cluster.status.members[0].latencyMs, 'number');
    assert.equal(condition(cluster, 'Ready').status, 'True');
    assert.equal(condition(cluster, 'Ready').reason, 'MembersHealthy');
    assert.equal(condition(cluster, 'Degraded').status, 'True');
    assert.match(condition(cluster, 'Degraded').message, /ghost: ENOENT/);
    assert.equal(condition(cluster, 'DiscoveryFailed').status, 'False');
    const evs = await pollUntil('an Event', async () => { const e = await events('static'); return e.length ? e : undefined; });
    assert.ok(evs.some((e) => e.reason === 'MembersChanged' && /joined: a, b/.test(e.message) && e.involvedObject.uid === created.metadata.uid && e.source.component === 'keyhold-operator'), JSON.stringify(evs));
  });

  it('no write while nothing changes: the ConfigMap keeps its resourceVersion across probe periods', async () => {
    const before = (await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/hsm-static`)).metadata.resourceVersion;
    const probedBefore = (await getCluster('static')).status.lastProbeTime;
    await sleep(3 * PERIOD * 1000);
    assert.notEqual((await getCluster('static')).status.lastProbeTime, probedBefore, 'still probing');
    assert.equal((await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/hsm-static`)).metadata.resourceVersion, before);
  });

  it('a killed member leaves the ConfigMap within two probe periods (Warning Event, Degraded), and joins again when it is back', async () => {
    const a = fleet.members[0]!;
    await a.kill();
    const { ms } = await waitForNames('hsm-static', ['b']);
    assert.ok(ms <= 2 * PERIOD * 1000 + 500, `left after ${ms} ms:\n${operator.output().slice(-4000)}`);
    // The ConfigMap is written before the status.
    const cluster = await pollUntil('status naming a', async () => { const c = await getCluster('static'); return /a: ECONNREFUSED/.test(condition(c, 'Degraded')?.message) ? c : undefined; });
    assert.equal(condition(cluster, 'Ready').status, 'True');
    assert.deepEqual(cluster.status.members.map((m: any) => [m.name, m.healthy]), [['a', false], ['b', true], ['ghost', false]]);
    assert.ok((await events('static')).some((e) => e.reason === 'MembersChanged' && e.type === 'Warning' && /left: a \(ECONNREFUSED\)/.test(e.message)));
    await a.start();
    await waitForNames('hsm-static', ['a', 'b']);
  });

  it('a spec change takes effect at once, not at the next period: an added member appears', async () => {
    const [a, b] = fleet.members;
    await createCluster('slow', { sources: [{ static: { endpoints: [endpoint(a!)] } }], probe: { periodSeconds: 600 }, configMap: { name: 'hsm-slow' } });
    await waitForNames('hsm-slow', ['a']);
    const c = await fleet.addMember();
    const current = await getCluster('slow');
    await admin('PATCH', `${CLUSTERS}/slow`, { spec: { sources: [{ static: { endpoints: [endpoint(a!), endpoint(b!), endpoint(c)] } }] } }, 'application/merge-patch+json');
    const { ms } = await waitForNames('hsm-slow', ['a', 'b', 'c'], 10_000);
    assert.ok(ms < 5000, `took ${ms} ms with a 600 s period`);
    const updated = await pollUntil('observedGeneration', async () => { const u = await getCluster('slow'); return u.status?.observedGeneration > current.metadata.generation ? u : undefined; });
    assert.equal(updated.status.observedGeneration, updated.metadata.generation);
  });

  it('command source: a program prints the endpoints; bad output is DiscoveryFailed and keeps the last good set; a program not allowed is refused', async () => {
    const [a, b] = fleet.members;
    const answer = join(dir, 'answer.json');
    const script = join(dir, 'discover.mjs');
    writeFileSync(script, "import { readFileSync } from 'node:fs'; const t = readFileSync(process.argv[2], 'utf8'); if (t === 'fail') { console.error('throttled by the cloud API'); process.exit(3); } process.stdout.write(t);\n");
    writeFileSync(answer, JSON.stringify({ endpoints: [endpoint(a!)] }));
    await createCluster('cmd', { sources: [{ command: { command: [process.execPath, script, answer], timeoutSeconds: 5 } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-cmd' } });
    await waitForNames('hsm-cmd', ['a']);
    // The bare-array form, and a member added by the program: it appears.
    writeFileSync(answer, JSON.stringify([endpoint(a!), endpoint(b!)]));
    await waitForNames('hsm-cmd', ['a', 'b']);

    writeFileSync(answer, '{"endpoints": [{"name": "../x", "address": ""}]}');
    const failed = await pollUntil('DiscoveryFailed', async () => { const c = await getCluster('cmd'); return condition(c, 'DiscoveryFailed')?.status === 'True' ? c : undefined; });
    assert.equal(condition(failed, 'DiscoveryFailed').reason, 'CommandOutputInvalid');
    assert.match(condition(failed, 'DiscoveryFailed').message, /keeping its 2 endpoint\(s\) from the last good answer/);
    assert.deepEqual(names(await configMapSet('hsm-cmd')), ['a', 'b'], 'the last good set is kept');
    writeFileSync(answer, 'fail');
    const exited = await pollUntil('CommandFailed', async () => { const c = await getCluster('cmd'); return condition(c, 'DiscoveryFailed')?.reason === 'CommandFailed' ? c : undefined; });
    assert.match(condition(exited, 'DiscoveryFailed').message, /exited with 3: throttled by the cloud API/);
    assert.ok((await events('cmd')).some((e) => e.type === 'Warning' && e.reason === 'CommandOutputInvalid'));
    // A kept member that dies still leaves: the kept set is probed.
    await b!.kill();
    await waitForNames('hsm-cmd', ['a']);
    await b!.start();
    writeFileSync(answer, JSON.stringify([endpoint(b!)]));
    await waitForNames('hsm-cmd', ['b']);
    assert.equal(condition(await pollUntil('recovered', async () => { const c = await getCluster('cmd'); return condition(c, 'DiscoveryFailed')?.status === 'False' ? c : undefined; }), 'DiscoveryFailed').reason, 'SourcesAnswered');

    await createCluster('not-allowed', { sources: [{ command: { command: ['/bin/sh', '-c', 'echo []'] } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-not-allowed' } });
    const refused = await pollUntil('CommandNotAllowed', async () => { const c = await getCluster('not-allowed'); return condition(c, 'DiscoveryFailed')?.status === 'True' ? c : undefined; });
    assert.equal(condition(refused, 'DiscoveryFailed').reason, 'CommandNotAllowed');
    assert.equal(condition(refused, 'Ready').reason, 'NoHealthyMembers');
    assert.deepEqual(names(await configMapSet('hsm-not-allowed')), []);
  });

  it('DNS A source at a configured resolver: the answering addresses go in, a closed port stays out, a changed record is followed', async () => {
    const [port] = await freePorts(1) as [number];
    await listen('127.0.0.2', port);
    const down = await listen('127.0.0.3', port);
    down.close(); // 127.0.0.3 answers DNS but not the port
    aRecords.set('hsm.cluster.test', ['127.0.0.2', '127.0.0.3']);
    await createCluster('dns-a', { sources: [{ dns: { name: 'hsm.cluster.test', type: 'A', port, resolver: `127.0.0.1:${dnsPort}` } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-dns-a' } });
    const { set } = await waitForNames('hsm-dns-a', [`127.0.0.2-${port}`]);
    assert.equal(set.endpoints[0]!.address, `127.0.0.2:${port}`);
    const cluster = await getCluster('dns-a');
    assert.deepEqual(cluster.status.members.map((m: any) => [m.name, m.healthy]), [[`127.0.0.2-${port}`, true], [`127.0.0.3-${port}`, false]]);
    await listen('127.0.0.4', port);
    aRecords.set('hsm.cluster.test', ['127.0.0.4']);
    await waitForNames('hsm-dns-a', [`127.0.0.4-${port}`]);
  });

  it('DNS SRV source: targets and ports from the records, resolved through the same resolver for the probe; an address template', async () => {
    const [p1, p2] = await freePorts(2) as [number, number];
    await listen('127.0.0.5', p1);
    await listen('127.0.0.6', p2);
    aRecords.set('m1.hsm.test', ['127.0.0.5']);
    aRecords.set('m2.hsm.test', ['127.0.0.6']);
    srvRecords.set('_pkcs11._tcp.hsm.test', [{ target: 'm1.hsm.test', port: p1 }, { target: 'm2.hsm.test', port: p2 }]);
    await createCluster('dns-srv', {
      sources: [{ dns: { name: '_pkcs11._tcp.hsm.test', type: 'SRV', resolver: `127.0.0.1:${dnsPort}`, addressTemplate: 'tcp:host=${host},port=${port}' } }],
      probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-dns-srv' },
    });
    const { set } = await waitForNames('hsm-dns-srv', [`m1.hsm.test-${p1}`, `m2.hsm.test-${p2}`]);
    assert.deepEqual(set.endpoints.map((e) => e.address), [`tcp:host=m1.hsm.test,port=${p1}`, `tcp:host=m2.hsm.test,port=${p2}`]);
    // A name that does not exist (NXDOMAIN) is an answer: no members, not a failure.
    await admin('PATCH', `${CLUSTERS}/dns-srv`, { spec: { sources: [{ dns: { name: '_none._tcp.hsm.test', type: 'SRV', resolver: `127.0.0.1:${dnsPort}` } }] } }, 'application/merge-patch+json');
    await waitForNames('hsm-dns-srv', []);
    assert.equal(condition(await getCluster('dns-srv'), 'DiscoveryFailed').status, 'False');
    // A resolver that does not answer is a failure.
    const [silent] = await freePorts(1) as [number];
    await admin('PATCH', `${CLUSTERS}/dns-srv`, { spec: { sources: [{ dns: { name: '_pkcs11._tcp.hsm.test', type: 'SRV', resolver: `127.0.0.1:${silent}` } }] } }, 'application/merge-patch+json');
    const failed = await pollUntil('DnsLookupFailed', async () => { const c = await getCluster('dns-srv'); return condition(c, 'DiscoveryFailed')?.reason === 'DnsLookupFailed' ? c : undefined; }, { timeoutMs: 30_000 });
    assert.match(condition(failed, 'DiscoveryFailed').message, /SRV _pkcs11\._tcp\.hsm\.test at 127\.0\.0\.1:\d+/);
  });

  it('nodes marked by the label or an HSMCluster\'s nodeSelector get keyhold.io/hsm capacity and allocatable in whole units; it goes when the mark goes', async () => {
    const node = (name: string) => admin<any>('GET', `/api/v1/nodes/${name}`);
    const units = async (name: string) => { const n = await node(name); return [n.status?.capacity?.['keyhold.io/hsm'], n.status?.allocatable?.['keyhold.io/hsm']]; };
    await admin('POST', '/api/v1/nodes', { metadata: { name: 'hsm-node', labels: { 'keyhold.io/hsm': '2' } }, status: { capacity: { cpu: '4', memory: '8Gi', pods: '110' }, allocatable: { cpu: '4', memory: '8Gi', pods: '110' } } });
    await admin('POST', '/api/v1/nodes', { metadata: { name: 'rack-a-node', labels: { rack: 'a' } } });
    await pollUntil('hsm-node capacity', async () => JSON.stringify(await units('hsm-node')) === '["2","2"]');
    const n = await node('hsm-node');
    assert.equal(n.status.capacity.cpu, '4', 'other capacity untouched');
    assert.deepEqual(await units('rack-a-node'), [undefined, undefined]);
    assert.deepEqual(await units('plain-node'), [undefined, undefined]);

    // The CRD marks nodes too.
    await createCluster('local', { sources: [{ static: { endpoints: [] } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-local' }, nodeResource: { nodeSelector: { rack: 'a' }, count: 1 } });
    await pollUntil('rack-a-node capacity', async () => JSON.stringify(await units('rack-a-node')) === '["1","1"]');

    // The mark goes: the label is removed, the HSMCluster deleted.
    await admin('PATCH', '/api/v1/nodes/hsm-node', { metadata: { labels: { 'keyhold.io/hsm': null } } }, 'application/merge-patch+json');
    await pollUntil('hsm-node capacity removed', async () => JSON.stringify(await units('hsm-node')) === '[null,null]');
    assert.equal((await node('hsm-node')).status.capacity.cpu, '4');
    await admin('DELETE', `${CLUSTERS}/local`);
    await pollUntil('rack-a-node capacity removed', async () => JSON.stringify(await units('rack-a-node')) === '[null,null]');
  });

  it('a deleted HSMCluster is no longer reconciled (its ConfigMap goes with it through the owner reference)', async () => {
    // A one-second period: a loop that went on after the deletion would recreate the ConfigMap
    // (each run reads it) within the three periods waited below.
    await createCluster('gone', { sources: [{ static: { endpoints: [endpoint(fleet.members[0]!)] } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'hsm-gone' } });
    await waitForNames('hsm-gone', ['a']);
    await admin('DELETE', `${CLUSTERS}/gone`);
    await pollUntil('the operator saw the deletion', () => operator.output().split('\n').some((l) => l.includes(`${NS}/gone`) && l.includes('HSMCluster deleted')));
    // No garbage collector runs in this control plane: delete the ConfigMap as it would.
    await sleep(500);
    await admin('DELETE', `/api/v1/namespaces/${NS}/configmaps/hsm-gone`);
    await sleep(3 * PERIOD * 1000);
    assert.equal(await configMapSet('hsm-gone'), undefined, 'not recreated');
  });

  it('a ConfigMap the HSMCluster does not own is not overwritten: Ready False, ConfigMapConflict', async () => {
    await admin('POST', `/api/v1/namespaces/${NS}/configmaps`, { metadata: { name: 'someone-elses' }, data: { [ENDPOINTS_KEY]: 'mine' } });
    await createCluster('conflict', { sources: [{ static: { endpoints: [endpoint(fleet.members[0]!)] } }], probe: { periodSeconds: PERIOD }, configMap: { name: 'someone-elses' } });
    const c = await pollUntil('ConfigMapConflict', async () => { const x = await getCluster('conflict'); return condition(x, 'Ready')?.reason === 'ConfigMapConflict' ? x : undefined; });
    assert.equal(condition(c, 'Ready').status, 'False');
    assert.equal((await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/someone-elses`)).data[ENDPOINTS_KEY], 'mine');
  });

  it('the server-side ConfigMap watch, as a service account that may read only that ConfigMap: the first set and every change arrive in the callback; a bad document is reported and changes nothing', async () => {
    // The server's identity: get/list/watch on the one ConfigMap, by name.
    const { token: serverToken, kubeconfig } = await serverAccount('keyhold-server', 'hsm-static');
    const asServer = kubeRequest(tokenKubeConfig(cp.kubeConfig, serverToken));
    await assert.rejects(asServer('GET', `/api/v1/namespaces/${NS}/configmaps/hsm-cmd`), (err: KubeRequestError) => err instanceof KubeRequestError && err.status === 403);
    await assert.rejects(asServer('GET', `/api/v1/namespaces/${NS}/configmaps`), (err: KubeRequestError) => err instanceof KubeRequestError && err.status === 403);

    const seen: HsmEndpointSet[] = [];
    const errors: string[] = [];
    const watch = await watchEndpointConfigMap({ namespace: NS, name: 'hsm-static', kubeconfig }, (set) => seen.push(set), (err) => errors.push(err.message));
    try {
      await pollUntil('the first set', () => seen.length === 1);
      assert.deepEqual(names(seen[0]), ['a', 'b']);
      await fleet.members[1]!.kill();
      await pollUntil('b gone', () => seen.length === 2, { timeoutMs: 10_000 });
      assert.deepEqual(names(seen[1]), ['a']);
      assert.deepEqual(watch.current(), seen[1]);
      await fleet.members[1]!.start();
      await pollUntil('b back', () => seen.length === 3, { timeoutMs: 10_000 });
      assert.deepEqual(names(seen[2]), ['a', 'b']);
      // Someone writes garbage (the operator puts it right at its next period).
      const cm = await admin<any>('GET', `/api/v1/namespaces/${NS}/configmaps/hsm-static`);
      await admin('PUT', `/api/v1/namespaces/${NS}/configmaps/hsm-static`, { ...cm, data: { [ENDPOINTS_KEY]: '{"cluster":"static","endpoints":[{"name":"/etc"}]}' } });
      await pollUntil('the error', () => errors.some((e) => /endpoints\[0\]\.name/.test(e)));
      assert.deepEqual(names(watch.current()), ['a', 'b'], 'the last good set stays');
      assert.equal(errors.length, 1, errors.join('\n'));
    } finally {
      watch.stop();
    }
    // From a kubeconfig file too (admin here), with the first set delivered.
    const fromFile = await watchEndpointConfigMap({ namespace: NS, name: 'hsm-cmd', kubeconfig: cp.kubeconfigPath }, (set) => seen.push(set));
    try {
      await pollUntil('the hsm-cmd set', () => seen.at(-1)?.cluster === 'cmd');
    } finally {
      fromFile.stop();
    }
  });

  it('kubectl get shows the printer columns: Ready, healthy and total members, the ConfigMap', async () => {
    const table = await new Promise<any>((resolve, reject) => {
      const req = httpsRequest(`${cp.url}${CLUSTERS}/static`, { ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}`, accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => { try { resolve(JSON.parse(body)); } catch (err) { reject(err); } });
      });
      req.on('error', reject);
      req.end();
    });
    const columns = table.columnDefinitions.map((c: any) => c.name);
    const row = Object.fromEntries(columns.map((name: string, i: number) => [name, table.rows[0].cells[i]]));
    assert.deepEqual({ Ready: row.Ready, Healthy: row.Healthy, Members: row.Members, ConfigMap: row.ConfigMap }, { Ready: 'True', Healthy: 2, Members: 3, ConfigMap: 'hsm-static' });
  });

  it('a running keyhold server (hsm.endpoints.configMap) stops using a killed member and starts using an added one, without a restart', async () => {
    const [a, b] = fleet.members;
    await createCluster('e2e', { sources: [{ static: { endpoints: [endpoint(a!), endpoint(b!)] } }], probe: { periodSeconds: PERIOD, timeoutSeconds: 1 }, configMap: { name: 'hsm-e2e' } });
    await waitForNames('hsm-e2e', ['a', 'b']);
    const { kubeconfig } = await serverAccount('keyhold-server-e2e', 'hsm-e2e');
    const storeDir = tempDir('keyhold-operator-server-');
    const configFile = join(storeDir, 'keyhold.json');
    const token = fleet.token;
    writeFileSync(configFile, JSON.stringify({
      listen: '127.0.0.1:0',
      storage: { sqlite: { path: join(storeDir, 'keyhold.db') } },
      audit: { path: join(storeDir, 'audit.log') },
      hsm: {
        endpoints: { configMap: { namespace: NS, name: 'hsm-e2e', kubeconfig } },
        // One module file for every member: the pool copies it per member (the module reads
        // P11_KIT_SERVER_ADDRESS at C_Initialize).
        memberTemplate: { module: p11KitClientModule(), env: { P11_KIT_SERVER_ADDRESS: '${address}' }, tokenLabel: token.label, pinFile: token.pinFile },
      },
    }));
    // init reaches the token through a member named by the ConfigMap too (RSA-OAEP seal: no AES-GCM through the hop).
    const init = await runCliTimed(['init', '--config', configFile, '--root-token-file', join(storeDir, 'root-token')], {}, 90_000);
    assert.equal(init.code, 0, `init failed: ${init.stdout}${init.stderr}`);
    let server: DevServer | undefined;
    try {
      server = await startServer(configFile, {}, storeDir);
      const { address, rootToken } = server;
      const post = (path: string, body: unknown) => fetch(`${address}${path}`, {
        method: 'POST', headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      type Health = { hsm: { ok: boolean; members: Array<{ name: string; state: string; in_flight: number }> } };
      const members = async () => ((await (await fetch(`${address}/v1/sys/health`)).json()) as Health).hsm.members.map((m) => m.name).sort();
      const calls = async (member: string) => Number(new RegExp(`keyhold_hsm_call_seconds_count\\{member="${member}"\\} (\\d+)`).exec(await (await fetch(`${address}/metrics`)).text())?.[1] ?? 0);
      assert.deepEqual(await members(), ['a', 'b']);
      const created = await post('/v1/keys', { name: 'e2e-ec', type: 'ec-p256', protection: 'hsm' });
      assert.equal(created.status, 200, await created.text());

      // Load: signs (local hash, raw ECDSA on a member) from 8 workers, all through the kill.
      const WORKERS = 8;
      const failures: string[] = [];
      let stop = false;
      let done = 0;
      const workers = Array.from({ length: WORKERS }, async () => {
        while (!stop) {
          const response = await post('/v1/keys/e2e-ec/sign', { input: Buffer.from('sign me').toString('base64') });
          const text = await response.text();
          if (response.status === 200) done++;
          else failures.push(`${response.status} ${text}`);
        }
      });
      try {
        await sleep(1000);
        await a!.kill();
        const { ms } = await waitForNames('hsm-e2e', ['b']);
        assert.ok(ms <= 2 * PERIOD * 1000 + 500, `left the ConfigMap after ${ms} ms`);
        await pollUntil('the server to drop member a', async () => JSON.stringify(await members()) === '["b"]', { timeoutMs: 10_000, intervalMs: 100, detail: () => server!.output?.().slice(-3000) ?? '' });
        await sleep(1000);
        assert.equal(server.process.exitCode, null, 'same process: no restart');
      } finally {
        stop = true;
        await Promise.all(workers);
      }
      // The pool retries an idempotent call on another member: at most the calls in flight on a fail.
      assert.ok(failures.length <= WORKERS, `${failures.length} failures:\n${failures.slice(0, 5).join('\n')}`);
      for (const f of failures) assert.match(f, /^503 .*ERR_HSM_UNAVAILABLE/);
      assert.ok(done > 20, `${done} signs`);

      // A member added to the fleet and to the HSMCluster's static source: in the ConfigMap, then in the server, taking calls.
      const c = await fleet.addMember();
      await admin('PATCH', `${CLUSTERS}/e2e`, { spec: { sources: [{ static: { endpoints: [endpoint(b!), endpoint(c)] } }] } }, 'application/merge-patch+json');
      await waitForNames('hsm-e2e', ['b', c.name]);
      await pollUntil(`the server to add member ${c.name}`, async () => JSON.stringify(await members()) === JSON.stringify(['b', c.name]), { timeoutMs: 10_000, intervalMs: 100 });
      const before = await calls(c.name);
      for (let i = 0; i < 40; i++) {
        const r = await post('/v1/keys/e2e-ec/sign', { input: Buffer.from(`sign ${i}`).toString('base64') });
        assert.equal(r.status, 200, await r.text());
      }
      assert.ok(await calls(c.name) > before, `member ${c.name} took no call`);
      assert.ok(await calls('b') > 0);

      // kube-apiserver restarts: the server's watch is lost and comes back (back-off), and follows again.
      await cp.restartApiserver();
      await a!.start();
      await waitForNames('hsm-e2e', ['b', c.name]);
      await admin('PATCH', `${CLUSTERS}/e2e`, { spec: { sources: [{ static: { endpoints: [endpoint(a!), endpoint(b!), endpoint(c)] } }] } }, 'application/merge-patch+json');
      await waitForNames('hsm-e2e', ['a', 'b', c.name], 60_000);
      await pollUntil('the server to follow the ConfigMap after the API server restart', async () => JSON.stringify(await members()) === JSON.stringify(['a', 'b', c.name]), { timeoutMs: 40_000, intervalMs: 200, detail: () => server!.output().slice(-3000) });
      assert.match(server.output(), /ConfigMap keyhold\/hsm-e2e: .*keeping the current members/, 'the lost watch was reported');
      assert.equal(server.process.exitCode, null, 'same process: no restart');
    } finally {
      await server?.stop();
      if (!a!.running) await a!.start();
    }
  });

  it('the operator stops cleanly on SIGTERM', async () => {
    assert.equal(await operator.stop('SIGTERM'), 0, operator.output().slice(-2000));
  });

});
