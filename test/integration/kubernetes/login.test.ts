/**
 * Kubernetes service-account login end to end: a real kube-apiserver issues the tokens (TokenRequest,
 * bound to real Pod objects), a real `keyhold dev` verifies them against the cluster's JWKS and
 * checks pods and service accounts live, with a least-privilege reviewer identity.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { SignJWT } from 'jose';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { configureKubernetesLogin, podToken, serviceAccountToken, waitForWatches } from '../../helpers/kubernetes-login.js';
import { pollUntil } from '../../helpers/wait.js';
import { request } from '../api/api-helpers.js';
import { CLI, assertLoginAudit, auditRecords as auditRecordsOf, call, startDev, tempDir, type DevServer } from '../../helpers/server.js';

const exec = promisify(execFile);

const IMAGE = `registry.example/app@sha256:${'a'.repeat(64)}`;
const MAX_TTL_SECONDS = 3600;

describe('Kubernetes login with a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let dev: DevServer;
  let root: string;
  let jwksKid: string;
  const pods: Record<string, V1Pod> = {};

  const asRoot = (method: string, path: string, body?: unknown) => call(dev.address, method, path, root, body);
  const login = (role: string, jwt: string) => call(dev.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role, jwt });

  async function makePod(namespace: string, name: string, serviceAccountName: string): Promise<V1Pod> {
    const pod = await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: { serviceAccountName, containers: [{ name: 'app', image: IMAGE, command: ['/app'] }] } } });
    pods[`${namespace}/${name}`] = pod;
    return pod;
  }

  /** A token signed with the cluster's own service-account key, with claims chosen by the test. */
  async function craft(claims: Record<string, unknown>, options: { alg?: string; key?: Parameters<SignJWT['sign']>[0]; iat?: number; exp?: number; nbf?: number } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const key = options.key ?? createPrivateKey(readFileSync(join(cp.dir, 'sa.key')));
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'RS256', kid: jwksKid }).setIssuedAt(options.iat ?? now).setExpirationTime(options.exp ?? now + 600);
    if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
    return jwt.sign(key);
  }

  function claimsFor(namespace: string, sa: string, saUid: string, pod?: V1Pod, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      iss: cp.url, aud: ['keyhold'], sub: `system:serviceaccount:${namespace}:${sa}`, jti: randomUUID(),
      'kubernetes.io': { namespace, serviceaccount: { name: sa, uid: saUid }, ...(pod ? { pod: { name: pod.metadata?.name, uid: pod.metadata?.uid } } : {}) },
      ...extra,
    };
  }

  /** A pod in app/app, its projected token in a 0600 file as the kubelet writes it, and where the agent renders. */
  async function agentPod(name: string): Promise<{ jwtFile: string; out: string }> {
    const pod = await makePod('app', name, 'app');
    const dir = tempDir(`keyhold-${name}-`);
    const jwtFile = join(dir, 'token');
    writeFileSync(jwtFile, await podToken(core, pod), { mode: 0o600 });
    return { jwtFile, out: join(dir, 'secrets') };
  }

  const saUid = async (namespace: string, name: string) => (await core.readNamespacedServiceAccount({ namespace, name })).metadata?.uid as string;

  const auditRecords = () => auditRecordsOf(dev.dataDir);

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    for (const ns of ['app', 'other']) await core.createNamespace({ body: { metadata: { name: ns } } });
    for (const [ns, sa] of [['app', 'app'], ['app', 'other-sa'], ['other', 'app'], ['app', 'recreated']] as const) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    jwksKid = (JSON.parse((await cp.rawGet('/openid/v1/jwks')).body) as { keys: Array<{ kid: string }> }).keys[0]?.kid as string;

    await makePod('app', 'web', 'app');
    await makePod('app', 'web2', 'app');
    await makePod('app', 'other-sa-pod', 'other-sa');
    await makePod('other', 'web', 'app');
    await makePod('app', 'recreated-pod', 'recreated');

    // A server maximum below a role's TTL, to see the login token clamped to it.
    dev = await startDev(tempDir('keyhold-k8s-login-'), { KEYHOLD_TOKENS_MAX_TTL_SECONDS: String(MAX_TTL_SECONDS) });
    root = dev.rootToken;
    await configureKubernetesLogin(cp, dev);
    assert.equal((await asRoot('PUT', '/v1/policies/app-read', { rules: [{ path: 'secrets/app/*', capabilities: ['read'] }] })).status, 200);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/app', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app-read'], ttl_seconds: 600 })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/young', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app-read'], max_token_age_seconds: 60 })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/any', { bound_namespaces: ['*'], bound_service_accounts: ['*'], policies: ['app-read'] })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/secrets/app/db', { data: { password: 'pod-secret-1' } })).status, 200);
  });

  after(async () => {
    await dev?.stop();
    await cp?.stop();
  });

  it('the configuration never returns the reviewer token', async () => {
    const r = await asRoot('GET', '/v1/auth/kubernetes/config');
    assert.equal(r.status, 200);
    assert.equal(r.body.reviewer_jwt_set, true);
    assert.ok(!r.text.includes('eyJ'), 'no JWT in the answer');
  });

  it('a pod-bound token logs in, gets the role\'s secrets, and its identity is in the audit record', async () => {
    const jwt = await podToken(core, pods['app/web']);
    const r = await login('app', jwt);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.ttl, 600);
    assert.deepEqual(r.body.policies, ['app-read']);
    assert.match(r.body.accessor, /^kha\.[A-Za-z0-9_-]{32}$/);
    // A pod's token is an orphan (it lives by its pod), carries the pod's identity, and its accessor never shows the token.
    const looked = await asRoot('GET', `/v1/tokens/accessors/${r.body.accessor}`);
    assert.equal(looked.status, 200, looked.text);
    assert.equal(looked.body.orphan, true);
    assert.equal(looked.body.parent_accessor, undefined);
    assert.ok(looked.body.selectors.includes(`k8s:pod-uid:${pods['app/web']?.metadata?.uid}`));
    assert.ok(!looked.text.includes(r.body.token));
    assert.equal(r.body.identity.pod_uid, pods['app/web']?.metadata?.uid);
    assert.ok(r.body.identity.selectors.includes(`k8s:pod-uid:${pods['app/web']?.metadata?.uid}`));
    const secret = await call(dev.address, 'GET', '/v1/secrets/app/db', r.body.token);
    assert.equal(secret.status, 200);
    assert.equal(secret.body.data.password, 'pod-secret-1');
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/other/x', r.body.token)).status, 403);
    const records = auditRecords();
    const loginRecord = records.filter((e) => e.operation === 'auth.kubernetes.login' && e.outcome?.status === 200).at(-1);
    assert.ok(loginRecord?.fields?.selectors?.includes('k8s:ns:app'));
    assert.equal(loginRecord?.fields?.issued_accessor, r.body.accessor);
    assert.ok(!readFileSync(join(dev.dataDir, 'audit.log'), 'utf8').includes(jwt.split('.')[2] as string), 'the JWT is not in the audit log');
    const read = records.filter((e) => e.operation === 'secrets.read').at(-1) as { actor?: { selectors?: string[] } } | undefined;
    assert.ok(read?.actor?.selectors?.includes('k8s:sa:app/app'), 'requests made with the token carry its selectors');
  });

  it('logins are answered from the pod and service-account watches; a pod they do not hold is looked up live', async () => {
    const before = await waitForWatches(dev);
    assert.equal(before.configured, true);
    assert.ok((before.pods?.objects ?? 0) >= 5, `pods held: ${before.pods?.objects}`);
    assert.ok((before.service_accounts?.objects ?? 0) >= 4, `service accounts held: ${before.service_accounts?.objects}`);
    const jwt = await podToken(core, pods['app/web']);
    for (let i = 0; i < 5; i++) assert.equal((await login('app', jwt)).status, 200);
    const warm = await waitForWatches(dev);
    assert.equal((warm.live_gets ?? 0) - (before.live_gets ?? 0), 0, 'no API-server call for pods and service accounts the watches hold');
    assert.equal((warm.cache_hits ?? 0) - (before.cache_hits ?? 0), 10, 'one pod and one service account per login, from the watches');
    // A pod uid the watch does not hold is not taken on the watch's word: one live GET decides (and refuses).
    const appUid = await saUid('app', 'app');
    const stranger = await login('app', await craft({ ...claimsFor('app', 'app', appUid), 'kubernetes.io': { namespace: 'app', serviceaccount: { name: 'app', uid: appUid }, pod: { name: 'web', uid: randomUUID() } } }));
    assert.equal(stranger.status, 403);
    assert.match(stranger.body.error.message, /pod was replaced/);
    assert.equal(((await waitForWatches(dev)).live_gets ?? 0) - (warm.live_gets ?? 0), 1);
  });

  it('while kube-apiserver is down, pod-bound logins are refused (503, never a 500) and health says so; after it restarts, the watches list again and logins go on', async () => {
    const before = await waitForWatches(dev);
    const jwt = await podToken(core, pods['app/web']);
    let restarted = false;
    const restarting = cp.restartApiserver().finally(() => { restarted = true; });
    const statuses: string[] = [];
    let healthSaidUnsynced = false;
    while (!restarted) {
      const h = await call(dev.address, 'GET', '/v1/sys/health');
      assert.equal(h.status, 200, 'kube-apiserver down does not fail keyhold\'s health');
      if (h.body.kubernetes.pods_synced === false) healthSaidUnsynced = true;
      const r = await login('app', jwt);
      statuses.push(r.status === 200 ? '200' : `${r.status} ${r.body?.error?.code}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    await restarting;
    assert.ok(healthSaidUnsynced, 'health reported the pod watch unsynced while kube-apiserver was down');
    assert.ok(statuses.includes('503 ERR_KUBERNETES_NOT_SYNCED'), `logins meanwhile: ${statuses.join(', ')}`);
    for (const s of statuses) assert.ok(s === '200' || s.startsWith('503 '), `a login answered ${s} meanwhile`);
    let after = await waitForWatches(dev);
    await pollUntil('the watches to list again', async () => {
      after = await waitForWatches(dev);
      return (after.pods?.lists ?? 0) > (before.pods?.lists ?? 0) && (after.service_accounts?.lists ?? 0) > (before.service_accounts?.lists ?? 0);
    }, { timeoutMs: 30_000, intervalMs: 100, detail: () => JSON.stringify(after) });
    const r = await login('app', await podToken(core, pods['app/web']));
    assert.equal(r.status, 200, r.text);
  });

  it('identity selectors are usable in policies: {{k8s.namespace}} grants exactly the pod\'s own namespace', async () => {
    assert.equal((await asRoot('PUT', '/v1/policies/own-ns', { rules: [{ path: 'secrets/{{k8s.namespace}}/*', capabilities: ['read'] }] })).status, 200);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/own-ns', { bound_namespaces: ['*'], bound_service_accounts: ['app'], policies: ['own-ns'] })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/secrets/other/db', { data: { password: 'other-ns-secret' } })).status, 200);
    const fromApp = await login('own-ns', await podToken(core, pods['app/web']));
    const fromOther = await login('own-ns', await podToken(core, pods['other/web']));
    assert.equal(fromApp.status, 200, fromApp.text);
    assert.equal(fromOther.status, 200, fromOther.text);
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/app/db', fromApp.body.token)).status, 200);
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/other/db', fromApp.body.token)).status, 403);
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/other/db', fromOther.body.token)).body.data.password, 'other-ns-secret');
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/app/db', fromOther.body.token)).status, 403);
  });

  it('a role\'s TTL beyond the server maximum is clamped to it', async () => {
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/long', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app-read'], ttl_seconds: 2 * MAX_TTL_SECONDS })).status, 204);
    const r = await login('long', await podToken(core, pods['app/web']));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.ttl, MAX_TTL_SECONDS);
    const self = await call(dev.address, 'GET', '/v1/tokens/self', r.body.token);
    assert.equal(Date.parse(self.body.expires_at) - Date.parse(self.body.created_at), MAX_TTL_SECONDS * 1000);
  });

  it('a pod token holding a placeholder policy cannot put it in a role for other identities', async () => {
    assert.equal((await asRoot('PUT', '/v1/policies/role-admin', { rules: [{ path: 'sys/auth/kubernetes/roles/*', capabilities: ['update'] }] })).status, 200);
    assert.equal((await asRoot('PUT', '/v1/policies/own-ns-2', { rules: [{ path: 'secrets/{{k8s.namespace}}/*', capabilities: ['read'] }] })).status, 200);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/ns-admin', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['own-ns-2', 'role-admin'] })).status, 204);
    const r = await login('ns-admin', await podToken(core, pods['app/web']));
    assert.equal(r.status, 200, r.text);
    // It holds own-ns-2 only for its own namespace; in a role it would grant every namespace's secrets.
    const steal = await call(dev.address, 'PUT', '/v1/auth/kubernetes/roles/steal', r.body.token, { bound_namespaces: ['*'], bound_service_accounts: ['*'], policies: ['own-ns-2'] });
    assert.equal(steal.status, 403, steal.text);
    assert.equal(steal.body.error.code, 'ERR_PERMISSION_DENIED');
    assert.equal((await asRoot('GET', '/v1/auth/kubernetes/roles/steal')).status, 404, 'the role was not written');
  });

  it('deleting the pod revokes the keyhold token it got, and the tokens made with it, and its JWT no longer logs in', async () => {
    assert.equal((await asRoot('PUT', '/v1/policies/mint', { rules: [{ path: 'sys/tokens', capabilities: ['create'] }] })).status, 200);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/minting', { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app-read', 'mint'] })).status, 204);
    const jwt = await podToken(core, pods['app/web2']);
    const r = await login('app', jwt);
    assert.equal(r.status, 200, r.text);
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/app/db', r.body.token)).status, 200);
    const minting = await login('minting', jwt);
    assert.equal(minting.status, 200, minting.text);
    const child = await call(dev.address, 'POST', '/v1/tokens', minting.body.token, { policies: ['app-read'], ttl: '365d' });
    assert.equal(child.status, 200, child.text);
    assert.ok(Date.parse(child.body.expires_at) <= Date.now() + 600_000, 'the child expires with its parent, not in a year');
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/app/db', child.body.token)).status, 200, 'the child inherits the pod identity and works');
    await core.deleteNamespacedPod({ namespace: 'app', name: 'web2', body: { gracePeriodSeconds: 0 } });
    const revoked = async (token: string) => (await call(dev.address, 'GET', '/v1/secrets/app/db', token)).status === 401;
    await pollUntil('the pod\'s token, the tokens made with it and their child to be revoked after the pod was deleted',
      async () => await revoked(r.body.token) && await revoked(minting.body.token) && await revoked(child.body.token), { timeoutMs: 15_000, intervalMs: 200 });
    const again = await login('app', jwt);
    assert.equal(again.status, 403);
    assert.match(again.body.error.message, /pod no longer exists/);
  });

  it('successful logins never use the per-address budget; failed ones do, then 429 ERR_RATE_LIMITED (default 100 per 10 s)', async () => {
    // Its own loopback address, so the other cases' refusals do not share its budget.
    const agent = new http.Agent({ keepAlive: true, localAddress: '127.0.0.77' });
    try {
      const send = (role: string, jwt: string) => request(dev.address, { method: 'POST', path: '/v1/auth/kubernetes/login', json: { role, jwt }, agent });
      const jwt = await podToken(core, pods['app/web']);
      for (let i = 0; i < 120; i++) {
        const r = await send('app', jwt);
        assert.equal(r.status, 200, `successful login ${i}: ${r.status} ${r.text}`);
      }
      let failed = 0;
      let limited: Awaited<ReturnType<typeof send>> | undefined;
      for (let i = 0; i < 150 && !limited; i++) {
        const r = await send('nope', jwt);
        if (r.status === 429) limited = r;
        else {
          assert.equal(r.status, 403, r.text); // unknown role
          failed++;
        }
      }
      assert.ok(limited, 'failed logins were never limited');
      assert.equal(limited.body.error.code, 'ERR_RATE_LIMITED');
      assert.equal(failed, 100, 'failed logins answered before the limit');
      // The budget is the address's: a good JWT from it now waits for the window too.
      assert.equal((await send('app', jwt)).status, 429);
      const summary = auditRecords().find((e) => e.operation === 'rate-limit' && e.fields?.address === '127.0.0.77');
      assert.equal(summary?.fields?.event, 'started');
    } finally {
      agent.destroy();
    }
  });

  it('refuses a negative matrix, each with a clear reason, each audited', async () => {
    const web = pods['app/web'] as V1Pod;
    const appUid = await saUid('app', 'app');
    const now = Math.floor(Date.now() / 1000);
    const good = await podToken(core, web);
    const [h, p, s] = good.split('.') as [string, string, string];
    const flip = (text: string) => (text[10] === 'A' ? `${text.slice(0, 10)}B${text.slice(11)}` : `${text.slice(0, 10)}A${text.slice(11)}`);
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, any>;
    const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

    // Deleted-and-recreated service account: a token issued before the deletion.
    const recreatedJwt = await podToken(core, pods['app/recreated-pod']);
    await core.deleteNamespacedServiceAccount({ namespace: 'app', name: 'recreated' });
    const recreatedSa = await core.createNamespacedServiceAccount({ namespace: 'app', body: { metadata: { name: 'recreated' } } });
    // Deleted pod: a token issued before the deletion.
    const doomed = await makePod('app', 'doomed', 'app');
    const doomedJwt = await podToken(core, doomed);
    const deletedPod = await core.deleteNamespacedPod({ namespace: 'app', name: 'doomed', body: { gracePeriodSeconds: 0 } });
    // As with a TokenReview, keyhold learns of both through a watch: let it catch up, so the cases
    // below test the checks, not the race (the revocation test covers what happens inside it).
    await waitForWatches(dev, { pods: deletedPod.metadata?.resourceVersion, serviceAccounts: recreatedSa.metadata?.resourceVersion });

    const cases: Array<{ name: string; role?: string; jwt: string; reason: RegExp; status?: number }> = [
      { name: 'unknown role', role: 'nope', jwt: good, reason: /no role "nope"/ },
      { name: 'wrong namespace', jwt: await podToken(core, pods['other/web']), reason: /namespace other is not bound/ },
      { name: 'wrong service account', jwt: await podToken(core, pods['app/other-sa-pod']), reason: /service account other-sa is not bound/ },
      { name: 'wrong audience', jwt: await podToken(core, web, ['vault']), reason: /wrong audience/ },
      { name: 'not pod-bound where the role requires it', jwt: await serviceAccountToken(core, { namespace: 'app', name: 'app' }), reason: /requires a pod-bound token/ },
      { name: 'other issuer (signed with the cluster key)', jwt: await craft(claimsFor('app', 'app', appUid, web, { iss: 'https://other.example' })), reason: /wrong issuer/ },
      { name: 'expired', jwt: await craft(claimsFor('app', 'app', appUid, web), { iat: now - 7200, exp: now - 3600 }), reason: /token expired/ },
      { name: 'not yet valid', jwt: await craft(claimsFor('app', 'app', appUid, web), { nbf: now + 3600 }), reason: /not yet valid/ },
      { name: 'older than the role allows', role: 'young', jwt: await craft(claimsFor('app', 'app', appUid, web), { iat: now - 600, exp: now + 600 }), reason: /older than the role allows/ },
      { name: 'deleted pod', jwt: doomedJwt, reason: /pod no longer exists/ },
      { name: 'deleted and recreated service account', role: 'any', jwt: recreatedJwt, reason: /deleted and recreated/ },
      { name: 'tampered signature', jwt: `${h}.${p}.${flip(s)}`, reason: /signature invalid/ },
      { name: 'tampered payload (namespace changed)', jwt: `${h}.${Buffer.from(JSON.stringify({ ...payload, 'kubernetes.io': { ...payload['kubernetes.io'], namespace: 'other' } })).toString('base64url')}.${s}`, reason: /signature invalid/ },
      { name: 'alg none', jwt: `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`, reason: /malformed|not allowed|algorithm/ },
      { name: 'HS256 with a made-up secret', jwt: await craft(claimsFor('app', 'app', appUid, web), { alg: 'HS256', key: randomBytes(32) }), reason: /algorithm not allowed|not signed by a key/ },
      { name: 'signed by an unrelated key', jwt: await craft(claimsFor('app', 'app', appUid, web), { key: otherRsa }), reason: /signature invalid|not signed by a key/ },
      { name: 'subject does not match the service-account claims', jwt: await craft(claimsFor('app', 'app', appUid, web, { sub: 'system:serviceaccount:app:other-sa' })), reason: /subject does not match/ },
      { name: 'pod uid of another pod', jwt: await craft({ ...claimsFor('app', 'app', appUid), 'kubernetes.io': { namespace: 'app', serviceaccount: { name: 'app', uid: appUid }, pod: { name: 'web', uid: randomUUID() } } }), reason: /pod was replaced/ },
      { name: 'pod that runs as another service account', role: 'any', jwt: await craft(claimsFor('app', 'other-sa', await saUid('app', 'other-sa'), web, { sub: 'system:serviceaccount:app:other-sa' })), reason: /does not run as/ },
      { name: 'service-account uid that never existed', jwt: await craft(claimsFor('app', 'app', randomUUID(), web)), reason: /deleted and recreated/ },
      { name: 'not a JWT at all', jwt: 'not.a.jwt', reason: /malformed/ },
      { name: 'a JWT without Kubernetes claims', jwt: await craft({ iss: cp.url, aud: ['keyhold'], sub: 'someone' }), reason: /not a service-account token/ },
    ];
    const auditBefore = auditRecords().length;
    for (const c of cases) {
      const r = await login(c.role ?? 'app', c.jwt);
      assert.equal(r.status, c.status ?? 403, `${c.name}: ${r.status} ${r.text}`);
      assert.equal(r.body.error.code, 'ERR_PERMISSION_DENIED', c.name);
      assert.match(r.body.error.message, c.reason, c.name);
    }
    // Schema-level refusals: 400, also audited.
    assert.equal((await login('', good)).status, 400);
    assert.equal((await login('app', 'x'.repeat(20_000))).status, 400);

    // Every refusal, and nothing else, was audited, in order and each with its own reason; no token was issued.
    assertLoginAudit(dev.dataDir, auditBefore, [
      ...cases.map((c) => ({ name: c.name, status: 403, reason: c.reason })),
      { name: 'empty role (schema)', status: 400 }, { name: 'oversized JWT (schema)', status: 400 },
    ]);
  });

  it('keyhold agent (init) renders the role\'s secrets with the pod\'s token into files, atomically and with their modes', async () => {
    const { jwtFile, out } = await agentPod('agent-pod');
    await exec(process.execPath, [CLI, 'agent', '--addr', dev.address, '--role', 'app', '--jwt-file', jwtFile, '--dest', out,
      '--secret', 'password=app/db#password', '--secret', 'db.json=app/db:0440',
      '--template', `db.env=${Buffer.from('DB_PASSWORD={{ app/db#password }}\n').toString('base64')}:0400`]);
    assert.equal(readFileSync(join(out, 'db.env'), 'utf8'), 'DB_PASSWORD=pod-secret-1\n');
    assert.equal(readFileSync(join(out, 'password'), 'utf8'), 'pod-secret-1');
    assert.equal(statSync(join(out, 'password')).mode & 0o777, 0o400);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'db.json'), 'utf8')), { password: 'pod-secret-1' });
    assert.equal(statSync(join(out, 'db.json')).mode & 0o777, 0o440);

    // keyhold agent exec: the value reaches the child's environment; the stored Pod holds only the reference.
    const envPod = await core.createNamespacedPod({ namespace: 'app', body: { metadata: { name: 'env-pod' }, spec: { serviceAccountName: 'app', containers: [{
      name: 'app', image: IMAGE, command: ['/app'], env: [{ name: 'DB_PASSWORD', value: 'keyhold:app/db#password' }],
    }] } } });
    writeFileSync(jwtFile, await podToken(core, envPod));
    const child = await exec(process.execPath, [CLI, 'agent', 'exec', '--addr', dev.address, '--role', 'app', '--jwt-file', jwtFile, '--',
      process.execPath, '-e', 'process.stdout.write(`${process.env.DB_PASSWORD}|${process.env.PLAIN}`)'], { env: { ...process.env, DB_PASSWORD: 'keyhold:app/db#password', PLAIN: 'plain' } });
    assert.equal(child.stdout, 'pod-secret-1|plain');
    const raw = await cp.etcdGet('/registry/pods/app/env-pod');
    assert.ok(raw && raw.includes('keyhold:app/db#password'), 'the stored pod holds the reference');
    assert.ok(!raw.includes('pod-secret-1'), 'the stored pod does not hold the value');

    // After the pod is deleted, the same token no longer logs in: the agent exits non-zero with the reason.
    await core.deleteNamespacedPod({ namespace: 'app', name: 'env-pod', body: { gracePeriodSeconds: 0 } });
    await assert.rejects(
      exec(process.execPath, [CLI, 'agent', 'exec', '--addr', dev.address, '--role', 'app', '--jwt-file', jwtFile, '--', '/bin/true']),
      (err: { code?: number; stderr?: string }) => err.code === 1 && /pod no longer exists/.test(err.stderr ?? ''),
    );
  });

  it('keyhold agent (sidecar) refreshes changed secrets, stays under 50 MB RSS, and stops on SIGTERM', async () => {
    const { jwtFile, out } = await agentPod('sidecar-pod');
    assert.equal((await asRoot('PUT', '/v1/secrets/app/rotating', { data: { v: 'one' } })).status, 200);
    const auditBefore = auditRecords().length;
    const sidecar = spawn(process.execPath, [CLI, 'agent', '--addr', dev.address, '--role', 'app', '--jwt-file', jwtFile, '--dest', out, '--secret', 'v=app/rotating#v', '--refresh', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    sidecar.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const until = (what: string, check: () => boolean) => pollUntil(what, check, { timeoutMs: 10_000, intervalMs: 100, detail: () => `agent said: ${stderr}` });
      const read = () => { try { return readFileSync(join(out, 'v'), 'utf8'); } catch { return ''; } };
      await until('first render', () => read() === 'one');
      assert.equal((await asRoot('PUT', '/v1/secrets/app/rotating', { data: { v: 'two' } })).status, 200);
      await until('refreshed file', () => read() === 'two');
      const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${sidecar.pid}/status`, 'utf8'))?.[1]) / 1024;
      assert.ok(rssMb < 50, `agent RSS ${rssMb.toFixed(1)} MB`);
      console.log(`# agent sidecar RSS ${rssMb.toFixed(1)} MB`);
      // The refreshes reused the keyhold token (TTL 600 s): one login, several reads.
      const added = auditRecords().slice(auditBefore);
      assert.equal(added.filter((e) => e.operation === 'auth.kubernetes.login' && e.type === 'response').length, 1, 'one login for all the refreshes');
      assert.ok(added.filter((e) => e.operation === 'secrets.read').length >= 2, 'refreshes read the secret');
      // A refused token (here: revoked with its pod) makes the agent log in again at once, which now
      // says why it is refused; the last good file stays.
      await core.deleteNamespacedPod({ namespace: 'app', name: 'sidecar-pod', body: { gracePeriodSeconds: 0 } });
      await until('a refresh that logs in again and is refused', () => /refresh failed: .*pod no longer exists/.test(stderr));
      assert.equal(read(), 'two');
    } finally {
      sidecar.kill('SIGTERM');
      const code = await new Promise((r) => sidecar.once('exit', (c) => r(c)));
      assert.equal(code, 0, stderr);
    }
  });
});
