/**
 * The pod revoker as the unit a leader starts and stops, against a real kube-apiserver: the pod
 * watch runs whether or not it is started (logins need it on every replica), and a revoker started
 * later revokes the tokens of pods deleted while none ran, from what that watch reported and holds.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Barrier } from '../../../src/barrier/barrier.js';
import { isKeyholdError } from '../../../src/errors.js';
import { KubernetesAuth } from '../../../src/identity/kubernetes/auth.js';
import { PodTokenIndex } from '../../../src/identity/kubernetes/pod-token-index.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { tokenViews } from '../../../src/identity/token-paths.js';
import { TokenStore } from '../../../src/identity/tokens.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { createReviewer } from '../../helpers/kubernetes-login.js';
import { tempDir } from '../../helpers/server.js';

describe('the pod revoker, started and stopped under a live pod watch', { timeout: 5 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  const storage = SqliteStorage.open(join(tempDir('keyhold-pod-revoker-'), 'store.db'));
  const barrier = new Barrier(storage, randomBytes(32));
  const tokens = new TokenStore(tokenViews(barrier));
  const index = new PodTokenIndex(barrier.view(MOUNTS.podTokens), tokens);
  const warnings: string[] = [];
  const auth = new KubernetesAuth(barrier.view(MOUNTS.kubernetes), barrier.view(MOUNTS.podTokens), tokens, { warn: (m) => warnings.push(m) });

  /** Resolves when the pod watch reports the first list, or the pod with this uid deleted. */
  const next = (what: 'relisted' | string) => new Promise<void>((resolve) => {
    const off = auth.podEvents.subscribe({
      relisted: () => { if (what === 'relisted') { off(); resolve(); } },
      deleted: (uid) => { if (uid === what) { off(); resolve(); } },
    });
  });
  /** `ageMs`: how long ago the index entry says the token was issued. */
  const issue = async (podUid: string, ageMs = 0) => (await tokens.create({ policies: ['p'], ttlSeconds: 600 }, (r) => [index.entry(podUid, r.id, new Date(Date.parse(r.createdAt) - ageMs).toISOString())])).token;
  const valid = async (token: string) => tokens.lookup(token).then(() => true, (err: unknown) => {
    if (isKeyholdError(err, 'ERR_UNAUTHENTICATED')) return false;
    throw err;
  });
  const makePod = async (name: string) => (await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'registry.example/app:1' }] } } })).metadata?.uid as string;
  const deletePod = async (name: string, uid: string) => {
    const deleted = next(uid);
    await core.deleteNamespacedPod({ namespace: 'default', name });
    await deleted;
  };

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    // No controller manager runs, so no namespace gets its `default` service account.
    await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'app' } } });
    const listed = next('relisted');
    await auth.configure({ issuer: cp.url, apiServerUrl: cp.url, caPem: cp.caPem, reviewerJwt: await createReviewer(cp) });
    await listed;
  });

  after(async () => {
    auth.close();
    await cp?.stop();
    await storage.close();
  });

  it('not started: a deleted pod\'s tokens stay; started: they go at once, with those of indexed pods the watch does not hold, and no others', async () => {
    const a = await makePod('a');
    const b = await makePod('b');
    const tokenA = await issue(a);
    const tokenB = await issue(b);
    const tokenGone = await issue(randomUUID(), 60_000); // a pod deleted before this replica's watch listed
    await deletePod('a', a);
    await auth.podRevoker.idle();
    assert.equal(auth.podRevoker.running, false);
    assert.equal(await valid(tokenA), true, 'nothing revokes while the revoker is stopped');
    assert.equal(await valid(tokenGone), true);

    auth.podRevoker.start();
    await auth.podRevoker.idle();
    assert.equal(await valid(tokenA), false, 'the deletion the watch reported while stopped');
    assert.equal(await valid(tokenGone), false, 'an indexed pod the watch does not hold');
    assert.equal(await valid(tokenB), true, 'a live pod keeps its tokens');
  });

  it('started: a deletion revokes that pod\'s tokens; stopped again: no more', async () => {
    const c = await makePod('c');
    const d = await makePod('d');
    const tokenC = await issue(c);
    const tokenD = await issue(d);
    await deletePod('c', c);
    await auth.podRevoker.idle();
    assert.equal(await valid(tokenC), false);

    await auth.podRevoker.stop();
    await deletePod('d', d);
    await auth.podRevoker.idle();
    assert.equal(await valid(tokenD), true);
    assert.deepEqual(warnings.filter((w) => !w.startsWith('kubernetes watch:')), []);
  });
});
