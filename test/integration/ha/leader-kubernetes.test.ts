/**
 * The background work follows the leader: three replicas on one PostgreSQL with Kubernetes login
 * against a real kube-apiserver. kill -9 of the leader hands the work to another replica within
 * 10 s, and a pod deleted afterwards (or in the gap) still has its tokens revoked, once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { configureKubernetesLogin, waitForWatches } from '../../helpers/kubernetes-login.js';
import { call } from '../../helpers/server.js';
import { pollUntilUp, startReplicas, type Replica, type ReplicaSet } from '../../helpers/replicas.js';

const IMAGE = `registry.example/app@sha256:${'a'.repeat(64)}`;

describe('leadership over the background work, with a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let set: ReplicaSet;

  const live = () => set.replicas.filter((r) => r.process.exitCode === null && r.process.signalCode === null);

  async function podLogin(name: string, via: Replica): Promise<{ pod: V1Pod; token: string }> {
    const pod = await core.createNamespacedPod({ namespace: 'app', body: { metadata: { name }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: IMAGE, command: ['/app'] }] } } });
    const jwt = (await core.createNamespacedServiceAccountToken({
      namespace: 'app', name: 'app',
      body: { spec: { audiences: ['keyhold'], expirationSeconds: 600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata?.uid as string } } },
    })).status?.token as string;
    // Every replica's watch has the pod before the login (each replica logs in against its own copy).
    for (const r of live()) await waitForWatches({ address: r.address, rootToken: set.rootToken }, { pods: pod.metadata?.resourceVersion });
    const r = await call(via.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role: 'app', jwt });
    assert.equal(r.status, 200, r.text);
    return { pod, token: r.body.token };
  }

  /** Deletes the pod, and waits until no live replica accepts its token any more. */
  async function deleteAndExpectRevoked(pod: V1Pod, token: string, withinMs: number): Promise<number> {
    for (const r of live()) assert.equal((await call(r.address, 'GET', '/v1/tokens/self', token)).status, 200, 'the pod\'s token works before');
    const t0 = Date.now();
    await core.deleteNamespacedPod({ namespace: 'app', name: pod.metadata?.name as string, gracePeriodSeconds: 0 });
    await pollUntilUp('the deleted pod\'s token refused everywhere', withinMs, async () => {
      for (const r of live()) if ((await call(r.address, 'GET', '/v1/tokens/self', token)).status !== 401) return false;
      return true;
    });
    return Date.now() - t0;
  }

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'app' } } });
    await core.createNamespacedServiceAccount({ namespace: 'app', body: { metadata: { name: 'app' } } });
    set = await startReplicas(3);
    // Configured on one replica: the others pick the configuration up (change feed) and watch too.
    await configureKubernetesLogin(cp, { address: (set.replicas[0] as Replica).address, rootToken: set.rootToken });
    const root = (r: Replica, method: string, path: string, body?: unknown) => call(r.address, method, path, set.rootToken, body);
    assert.equal((await root(set.replicas[1] as Replica, 'PUT', '/v1/policies/app-read', { rules: [{ path: 'secrets/app/*', capabilities: ['read'] }] })).status, 200);
    assert.equal((await root(set.replicas[2] as Replica, 'PUT', '/v1/auth/kubernetes/roles/app', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app-read'], ttl_seconds: 600 })).status, 204);
    for (const r of set.replicas) await waitForWatches({ address: r.address, rootToken: set.rootToken });
  });

  after(async () => {
    await set?.destroy();
    await cp?.stop();
  });

  it('a deleted pod\'s tokens are revoked whichever replica issued them; only the leader runs the revocation', async () => {
    await pollUntilUp('one leader', 10_000, async () => (await set.leader()) !== undefined);
    const leader = await set.leader() as Replica;
    const follower = set.replicas.find((r) => r !== leader) as Replica;
    for (const via of [leader, follower]) {
      const { pod, token } = await podLogin(`before-${via.index}`, via);
      const ms = await deleteAndExpectRevoked(pod, token, 10_000);
      process.stderr.write(`pod deleted → its token (issued by ${via === leader ? 'the leader' : 'a follower'}) refused everywhere in ${ms} ms\n`);
    }
    for (const r of set.replicas) {
      const h = await call(r.address, 'GET', '/v1/sys/health');
      assert.deepEqual(h.body.replica.background_jobs.length > 0, r === leader, `replica ${r.index}: background jobs only on the leader`);
    }
  });

  it('kill -9 of the leader: another replica takes over within 10 s and revokes a deleted pod\'s tokens, even one deleted in the gap', async () => {
    const leader = await set.leader() as Replica;
    const survivors = set.replicas.filter((r) => r !== leader);
    // Issued by a replica that does not survive the test's kill: only the new leader can revoke it.
    const gap = await podLogin('deleted-in-the-gap', leader);
    const later = await podLogin('deleted-later', survivors[0] as Replica);
    leader.process.kill('SIGKILL');
    const killedAt = Date.now();
    // Deleted while there may be no leader at all.
    await core.deleteNamespacedPod({ namespace: 'app', name: 'deleted-in-the-gap', gracePeriodSeconds: 0 });
    await pollUntilUp('a new leader', 10_000, async () => {
      const next = await set.leader();
      return next !== undefined && next !== leader;
    });
    const takeover = Date.now() - killedAt;
    process.stderr.write(`leader killed with -9: another replica led after ${takeover} ms\n`);
    assert.ok(takeover < 10_000);
    await pollUntilUp('the gap pod\'s token refused everywhere', 10_000, async () => {
      for (const r of live()) if ((await call(r.address, 'GET', '/v1/tokens/self', gap.token)).status !== 401) return false;
      return true;
    });
    const ms = await deleteAndExpectRevoked(later.pod, later.token, 10_000);
    process.stderr.write(`after the takeover, a deleted pod's token was refused everywhere in ${ms} ms\n`);
    // The killed replica comes back as a follower.
    const back = await set.start(leader.index);
    const h = await call(back.address, 'GET', '/v1/sys/health');
    assert.equal(h.body.replica.leader, false);
  });
});
