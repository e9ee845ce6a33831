/**
 * Image attestation end to end: a real kube-apiserver holds the pods, a real registry on loopback
 * holds the images and their signatures, and cosign (a third-party signer) makes the signatures.
 * keyhold reads what each pod runs from the live pod and admits a login only when every image is
 * pinned and allowed or signed by a key the role trusts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../helpers/control-plane.js';
import { configureKubernetesLogin, podToken, serviceAccountToken, waitForWatches } from '../../helpers/kubernetes-login.js';
import { OCI_MANIFEST, cosignKeyPair, cosignSign, cosignVerify, pushImage, startRegistry, startRegistryTokenServer, type CosignKey, type Registry, type RegistryTokenServer } from '../../helpers/registry.js';
import { assertLoginAudit, auditRecords, call, startDev, tempDir, type DevServer } from '../../helpers/server.js';

describe('image attestation with a real registry and cosign signatures', { timeout: 10 * 60_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let dev: DevServer;
  let loginConfig: Record<string, unknown>;
  let registry: Registry;
  let trusted: CosignKey;
  let untrusted: CosignKey;
  const refs: Record<string, { digest: string; reference: string }> = {};

  const asRoot = (method: string, path: string, body?: unknown) => call(dev.address, method, path, dev.rootToken, body);
  const login = (role: string, jwt: string) => call(dev.address, 'POST', '/v1/auth/kubernetes/login', undefined, { role, jwt });

  async function podLogin(role: string, name: string, images: { containers: string[]; init?: string[] }) {
    const pod: V1Pod = await core.createNamespacedPod({ namespace: 'img', body: { metadata: { name }, spec: {
      serviceAccountName: 'app',
      containers: images.containers.map((image, i) => ({ name: `c${i}`, image })),
      ...(images.init ? { initContainers: images.init.map((image, i) => ({ name: `i${i}`, image })) } : {}),
    } } });
    return login(role, await podToken(core, pod));
  }

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'img' } } });
    await core.createNamespacedServiceAccount({ namespace: 'img', body: { metadata: { name: 'app' } } });

    registry = await startRegistry();
    const keys = tempDir('keyhold-cosign-');
    trusted = await cosignKeyPair(keys);
    untrusted = await cosignKeyPair(tempDir('keyhold-cosign-other-'));
    for (const name of ['signed', 'signed-init', 'unsigned', 'untrusted', 'allowed', 'other-digest']) refs[name] = await pushImage(registry, 'demo/app', name);
    await cosignSign((refs.signed as { reference: string }).reference, trusted);
    await cosignSign((refs['signed-init'] as { reference: string }).reference, trusted);
    await cosignSign((refs.untrusted as { reference: string }).reference, untrusted);
    // A valid trusted signature, moved to another image's signature tag: it names the wrong digest.
    const sigOf = (digest: string) => `${registry.url}/v2/demo/app/manifests/sha256-${digest.slice(7)}.sig`;
    const moved = Buffer.from(await (await fetch(sigOf((refs.signed as { digest: string }).digest), { headers: { accept: OCI_MANIFEST } })).arrayBuffer());
    const put = await fetch(sigOf((refs['other-digest'] as { digest: string }).digest), { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: moved });
    assert.equal(put.status, 201);

    dev = await startDev(tempDir('keyhold-attest-'));
    loginConfig = await configureKubernetesLogin(cp, dev);
    assert.equal((await asRoot('PUT', '/v1/policies/img', { rules: [{ path: 'secrets/img/*', capabilities: ['read'] }] })).status, 200);
    const insecure = [registry.host, '127.0.0.1:1'];
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/signed', { bound_namespaces: ['img'], bound_service_accounts: ['app'], policies: ['img'], image_policy: { trusted_keys_pem: [trusted.publicKeyPem], insecure_registries: insecure } })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/allow', { bound_namespaces: ['img'], bound_service_accounts: ['app'], policies: ['img'], image_policy: { allowed_digests: [(refs.allowed as { digest: string }).digest] } })).status, 204);
    assert.equal((await asRoot('PUT', '/v1/secrets/img/db', { data: { password: 'image-gated' } })).status, 200);
  });

  after(async () => {
    await dev?.stop();
    await registry?.stop();
    await cp?.stop();
  });

  it('cosign itself agrees with the fixtures (independent second opinion)', async () => {
    assert.equal(await cosignVerify((refs.signed as { reference: string }).reference, trusted.publicKeyPath), true);
    assert.equal(await cosignVerify((refs.untrusted as { reference: string }).reference, trusted.publicKeyPath), false);
    assert.equal(await cosignVerify((refs.unsigned as { reference: string }).reference, trusted.publicKeyPath), false);
    assert.equal(await cosignVerify((refs['other-digest'] as { reference: string }).reference, trusted.publicKeyPath), false);
  });

  it('a pod whose every image is signed by a trusted key logs in; its images are in its selectors', async () => {
    const r = await podLogin('signed', 'ok-signed', { containers: [(refs.signed as { reference: string }).reference], init: [(refs['signed-init'] as { reference: string }).reference] });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.identity.selectors.includes(`k8s:image:${(refs.signed as { reference: string }).reference}`));
    assert.equal((await call(dev.address, 'GET', '/v1/secrets/img/db', r.body.token)).body.data.password, 'image-gated');
    const allowed = await podLogin('allow', 'ok-allowed', { containers: [(refs.allowed as { reference: string }).reference] });
    assert.equal(allowed.status, 200, allowed.text);
  });

  it('a registry that demands tokens (Docker Hub, GHCR, Harbor style): keyhold gets an anonymous pull token for the one repository', async () => {
    let tokens: RegistryTokenServer | undefined;
    let guarded: Registry | undefined;
    try {
      tokens = await startRegistryTokenServer();
      // The same images and signatures, served only to holders of a token.
      guarded = await startRegistry({ sameDataAs: registry, tokenAuth: tokens });
      assert.equal((await fetch(`${guarded.url}/v2/demo/app/manifests/signed`)).status, 401, 'the guarded registry refuses anonymous reads');
      assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/guarded', { bound_namespaces: ['img'], bound_service_accounts: ['app'], policies: ['img'], image_policy: { trusted_keys_pem: [trusted.publicKeyPem], insecure_registries: [guarded.host] } })).status, 204);
      const at = (name: string) => `${(guarded as Registry).host}/demo/app@${(refs[name] as { digest: string }).digest}`;

      const ok = await podLogin('guarded', 'guarded-ok', { containers: [at('signed')] });
      assert.equal(ok.status, 200, ok.text);
      assert.ok(tokens.requests.length >= 1);
      for (const q of tokens.requests) assert.deepEqual([q.get('service'), q.get('scope')], ['keyhold-test-registry', 'repository:demo/app:pull']);
      // Still a real check behind the token: an unsigned image is refused.
      const unsigned = await podLogin('guarded', 'guarded-unsigned', { containers: [at('unsigned')] });
      assert.equal(unsigned.status, 403);
      assert.match(unsigned.body.error.message, /unsigned/);

      // A token service that refuses (for a repository keyhold holds no token for): denied with the reason, never allowed.
      const other = await pushImage(registry, 'demo/refused', 'v1');
      tokens.refuse = true;
      const refused = await podLogin('guarded', 'guarded-refused', { containers: [`${guarded.host}/demo/refused@${other.digest}`] });
      assert.equal(refused.status, 403, refused.text);
      assert.match(refused.body.error.message, /token service answered HTTP 401|refused its own anonymous pull token/);
    } finally {
      await guarded?.stop();
      await tokens?.stop();
    }
  });

  it('a private registry: its token service wants credentials; keyhold uses the configured ones and never shows the password', async () => {
    const credentials = { username: 'puller', password: `pw-${randomUUID()}` };
    let tokens: RegistryTokenServer | undefined;
    let privateRegistry: Registry | undefined;
    try {
      tokens = await startRegistryTokenServer({ credentials });
      privateRegistry = await startRegistry({ sameDataAs: registry, tokenAuth: tokens });
      const host = privateRegistry.host;
      assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/roles/private', { bound_namespaces: ['img'], bound_service_accounts: ['app'], policies: ['img'], image_policy: { trusted_keys_pem: [trusted.publicKeyPem], insecure_registries: [host] } })).status, 204);
      const image = `${host}/demo/app@${(refs.signed as { digest: string }).digest}`;

      // No credentials configured: the token service refuses an anonymous token, so the login is refused.
      const without = await podLogin('private', 'private-without', { containers: [image] });
      assert.equal(without.status, 403);
      assert.match(without.body.error.message, /token service answered HTTP 401 for an anonymous pull token/);

      // With credentials for that host: allowed. The configuration never shows the password.
      assert.equal((await asRoot('PUT', '/v1/auth/kubernetes/config', { ...loginConfig, registry_credentials: [{ host, ...credentials }] })).status, 204);
      const shown = await asRoot('GET', '/v1/auth/kubernetes/config');
      assert.deepEqual(shown.body.registry_credentials, [{ host, username: 'puller' }]);
      assert.ok(!shown.text.includes(credentials.password));
      await waitForWatches(dev);
      const withCreds = await podLogin('private', 'private-with', { containers: [image] });
      assert.equal(withCreds.status, 200, withCreds.text);
      assert.ok(tokens.requests.length >= 2);
      // A host named twice is a clear 400.
      const twice = await asRoot('PUT', '/v1/auth/kubernetes/config', { ...loginConfig, registry_credentials: [{ host, ...credentials }, { host, ...credentials }] });
      assert.equal(twice.status, 400);
      assert.match(twice.body.error.message, /twice/);
    } finally {
      await asRoot('PUT', '/v1/auth/kubernetes/config', loginConfig);
      await waitForWatches(dev); // the next test logs in: a new configuration's pod watch must have listed
      await privateRegistry?.stop();
      await tokens?.stop();
    }
  });

  it('an ephemeral container (kubectl debug) is held to the same image policy', async () => {
    const s = (name: string) => (refs[name] as { reference: string }).reference;
    const pod = await core.createNamespacedPod({ namespace: 'img', body: { metadata: { name: 'debugged' }, spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: s('signed') }] } } });
    const token = await podToken(core, pod);
    assert.equal((await login('signed', token)).status, 200);
    const debugged = await core.replaceNamespacedPodEphemeralcontainers({ namespace: 'img', name: 'debugged', body: {
      ...pod, spec: { ...pod.spec, containers: pod.spec?.containers ?? [], ephemeralContainers: [{ name: 'debugger', image: s('unsigned') }] },
    } });
    // keyhold reads the pod from its watch: let the watch see the change first.
    await waitForWatches(dev, { pods: debugged.metadata?.resourceVersion });
    const r = await login('signed', token);
    assert.equal(r.status, 403, r.text);
    assert.match(r.body.error.message, /container debugger|unsigned/);
  });

  it('refuses what the pod runs, with the reason, and audits it', async () => {
    const s = (name: string) => (refs[name] as { reference: string }).reference;
    const cases: Array<{ name: string; role: string; images: { containers: string[]; init?: string[] }; reason: RegExp }> = [
      { name: 'image by tag only', role: 'signed', images: { containers: [`${registry.host}/demo/app:signed`] }, reason: /not pinned by digest/ },
      { name: 'digest not allowed', role: 'allow', images: { containers: [s('unsigned')] }, reason: /not in the role's allowlist/ },
      { name: 'unsigned image', role: 'signed', images: { containers: [s('unsigned')] }, reason: /unsigned/ },
      { name: 'signed by an untrusted key', role: 'signed', images: { containers: [s('untrusted')] }, reason: /not by a key the role trusts/ },
      { name: 'signature for another digest', role: 'signed', images: { containers: [s('other-digest')] }, reason: /for another digest/ },
      { name: 'unsigned init container beside a signed app', role: 'signed', images: { containers: [s('signed')], init: [s('unsigned')] }, reason: /unsigned/ },
      { name: 'registry down', role: 'signed', images: { containers: [`127.0.0.1:1/demo/app@${(refs.signed as { digest: string }).digest}`] }, reason: /unreachable/ },
    ];
    let i = 0;
    const auditBefore = auditRecords(dev.dataDir).length;
    for (const c of cases) {
      const r = await podLogin(c.role, `bad-${i++}`, c.images);
      assert.equal(r.status, 403, `${c.name}: ${r.text}`);
      assert.match(r.body.error.message, c.reason, c.name);
    }
    // A token not bound to a pod cannot say what runs: a role with an image policy refuses it.
    const r = await login('signed', await serviceAccountToken(core, { namespace: 'img', name: 'app' }));
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /image policy, which needs a pod-bound token/);
    assertLoginAudit(dev.dataDir, auditBefore, [
      ...cases.map((c) => ({ name: c.name, status: 403, reason: c.reason })),
      { name: 'unbound token', status: 403, reason: /needs a pod-bound token/ },
    ]);
  });
});
