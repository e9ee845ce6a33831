/**
 * SSO with two replicas on one PostgreSQL: a login begun on one replica ends on the other (the
 * flow is in the barrier, not in a replica's memory), and its state is still single use across
 * them: a replay on the first, or two callbacks racing on both, give exactly one token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOidcProvider, type TestOidcProvider } from '../../helpers/oidc-provider.js';
import { startReplicas, type ReplicaSet } from '../../helpers/replicas.js';
import { call } from '../../helpers/server.js';
import { assertRefused, CALLBACK } from './support.js';

describe('SSO across replicas', () => {
  let set: ReplicaSet;
  let idp: TestOidcProvider;
  let redirectUri = '';
  const a = () => set.replicas[0]!.address;
  const b = () => set.replicas[1]!.address;

  before(async () => {
    set = await startReplicas(2);
    // The redirect URI a load balancer in front of both would have; here, replica A's.
    redirectUri = a() + CALLBACK;
    idp = await startOidcProvider({ redirectUris: [redirectUri], accounts: { alice: { groups: ['kh-ops'] } } });
    const root = set.rootToken;
    const put = async (address: string, path: string, body: unknown) => {
      const r = await call(address, 'PUT', path, root, body);
      assert.ok(r.status === 200 || r.status === 204, `${path}: ${r.text}`);
    };
    await put(a(), '/v1/auth/oidc/config', { issuer: idp.issuer, client_id: idp.client.client_id, client_secret: idp.client.client_secret, redirect_uris: [redirectUri], scopes: ['openid', 'groups'] });
    await put(a(), '/v1/policies/ops-read', { rules: [{ path: 'secrets/ops/*', capabilities: ['read'] }] });
    await put(a(), '/v1/sys/groups/ops', { policies: ['ops-read'], members: [], external_groups: ['kh-ops'] });
  });
  after(async () => {
    await idp?.stop();
    await set?.destroy();
  });

  const begin = async (on: string) => {
    const r = await call(on, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: redirectUri });
    assert.equal(r.status, 200, r.text);
    return idp.login(r.body.auth_url as string, 'alice');
  };

  it('reads the configuration another replica wrote', async () => {
    const r = await call(b(), 'GET', '/v1/auth/oidc/config', set.rootToken);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.issuer, idp.issuer);
  });

  it('ends on replica B a login begun on replica A; a replay on A is refused', async () => {
    const answer = await begin(a());
    const done = await call(b(), 'POST', CALLBACK, undefined, { code: answer.code, state: answer.state });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(done.body.identity.selectors, ['oidc:alice']);
    assert.deepEqual(done.body.policies, ['ops-read']);
    assertRefused(await call(a(), 'POST', CALLBACK, undefined, { code: answer.code, state: answer.state }), 400, 'ERR_OIDC_STATE_INVALID');
  });

  it('gives exactly one token when the same state reaches both replicas at once', async () => {
    for (let round = 0; round < 3; round++) {
      const answer = await begin(round % 2 === 0 ? a() : b());
      const results = await Promise.all([a(), b(), a(), b()].map((on) => call(on, 'POST', CALLBACK, undefined, { code: answer.code, state: answer.state })));
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 400, 400, 400], results.map((r) => r.text).join('\n'));
    }
  });
});
