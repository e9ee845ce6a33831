/** The pure login steps: binding, synced, and the live verdict, each refusing with its one kind of error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { checkBinding } from '../../../../src/identity/kubernetes/binding-check.js';
import type { ServiceAccountClaims } from '../../../../src/identity/kubernetes/jwt-check.js';
import { checkPodWatchSynced, judgeLive } from '../../../../src/identity/kubernetes/live-check.js';
import { identitySelectors } from '../../../../src/identity/kubernetes/token-issue.js';
import type { KubernetesRole } from '../../../../src/identity/kubernetes/types.js';
import { refusedBy } from './support.js';

const role: KubernetesRole = { name: 'app', boundNamespaces: ['app', 'team-*'], boundServiceAccounts: ['app'], audience: 'keyhold', ttlSeconds: 600, policies: ['p'], requirePodBound: true };
const bound: ServiceAccountClaims = { namespace: 'app', serviceAccount: { name: 'app', uid: 'sa-1' }, pod: { name: 'web', uid: 'pod-1' } };
const unbound: ServiceAccountClaims = { namespace: 'app', serviceAccount: { name: 'app', uid: 'sa-1' } };
const livePod = (over: { uid?: string; serviceAccountName?: string; deleting?: boolean } = {}): V1Pod => ({
  metadata: { name: 'web', namespace: 'app', uid: over.uid ?? 'pod-1', ...(over.deleting ? { deletionTimestamp: new Date() } : {}) },
  spec: { serviceAccountName: over.serviceAccountName ?? 'app', containers: [] },
});

describe('login step binding', () => {
  it('admits a bound namespace (glob) and service account', () => {
    checkBinding(role, bound);
    checkBinding(role, { ...bound, namespace: 'team-a' });
    checkBinding({ ...role, requirePodBound: false }, unbound);
  });
  it('refuses another namespace, another service account, and an unbound token where the role needs a pod', () => {
    assert.throws(() => checkBinding(role, { ...bound, namespace: 'other' }), refusedBy('binding', /namespace other is not bound to role app/));
    assert.throws(() => checkBinding(role, { ...bound, serviceAccount: { name: 'x', uid: 'sa-1' } }), refusedBy('binding', /service account x is not bound/));
    assert.throws(() => checkBinding(role, unbound), refusedBy('binding', /requires a pod-bound token/));
    assert.throws(() => checkBinding({ ...role, requirePodBound: false, imagePolicy: { allowedDigests: [] } }, unbound), refusedBy('binding', /image policy, which needs a pod-bound token/));
  });
});

describe('login step synced', () => {
  it('refuses a pod-bound token while the pod watch is not synced (503, to retry), and lets an unbound one through', () => {
    assert.throws(() => checkPodWatchSynced(bound, { podsSynced: () => false }), refusedBy('synced', /pod watch is not synced/, 'ERR_KUBERNETES_NOT_SYNCED'));
    checkPodWatchSynced(unbound, { podsSynced: () => false });
    checkPodWatchSynced(bound, { podsSynced: () => true });
  });
});

describe('login step live (the verdict on what the cluster holds)', () => {
  it('admits the service account and pod the token names, as they were', () => {
    judgeLive(bound, 'sa-1', livePod());
    judgeLive(unbound, 'sa-1', undefined);
  });
  const cases: Array<[string, ServiceAccountClaims, string | undefined, V1Pod | undefined, RegExp]> = [
    ['service account gone', bound, undefined, livePod(), /service account no longer exists/],
    ['service account recreated', bound, 'sa-2', livePod(), /deleted and recreated/],
    ['pod gone', bound, 'sa-1', undefined, /pod no longer exists/],
    ['pod replaced', bound, 'sa-1', livePod({ uid: 'pod-2' }), /pod was replaced/],
    ['pod being deleted', bound, 'sa-1', livePod({ deleting: true }), /pod is being deleted/],
    ['pod runs as another service account', bound, 'sa-1', livePod({ serviceAccountName: 'other' }), /does not run as/],
  ];
  for (const [name, claims, saUid, pod, reason] of cases) {
    it(`refuses: ${name}`, () => assert.throws(() => judgeLive(claims, saUid, pod), refusedBy('live', reason)));
  }
  it('a pod spec without a service account runs as "default"', () => {
    const pod = livePod();
    delete pod.spec?.serviceAccountName;
    judgeLive({ ...bound, serviceAccount: { name: 'default', uid: 'sa-1' } }, 'sa-1', pod);
  });
});

describe('identity selectors', () => {
  it('name the namespace, service account and its uid, and the pod when bound to one', () => {
    assert.deepEqual(identitySelectors(unbound), ['k8s:ns:app', 'k8s:sa:app/app', 'k8s:sa-uid:sa-1']);
    assert.deepEqual(identitySelectors(bound), ['k8s:ns:app', 'k8s:sa:app/app', 'k8s:sa-uid:sa-1', 'k8s:pod:app/web', 'k8s:pod-uid:pod-1']);
  });
});
