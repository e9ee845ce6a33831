/**
 * Authorisation against a real `keyhold dev` server: policies grant exactly what they say, deny
 * wins, tokens cannot escalate, and expired or revoked tokens stop working.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startDev, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertHealthy, assertOk, b64, openApiOperations, type RawResponse } from './api-helpers.js';

let server: DevServer;
let root: string;
const PLAINTEXT = b64('authorization test');
const fx = { payCiphertext: '', otherCiphertext: '', ecSignature: '' };

const { call, asRoot } = apiCaller(() => ({ address: server.address, root }));

async function putPolicy(name: string, rules: Array<{ path: string; capabilities: string[] }>): Promise<void> {
  await asRoot('PUT', `/v1/policies/${name}`, { rules });
}

async function newToken(policies: string[], extra: Record<string, unknown> = {}, by = root): Promise<{ token: string; id: string; accessor: string; expires_at?: string }> {
  const res = await call(by, 'POST', '/v1/tokens', { policies, ...extra });
  assertOk(res, 200, `create token ${JSON.stringify(policies)}`);
  return res.body;
}

const denied = (res: RawResponse, what: string) => assertError(res, 403, 'ERR_PERMISSION_DENIED', what);

before(async () => {
  server = await startDev();
  root = server.rootToken;
  for (const [name, type] of [['pay', 'aes256-gcm'], ['other', 'aes256-gcm'], ['sig', 'ec-p256'], ['deletable', 'aes256-gcm']] as const) {
    await asRoot('POST', '/v1/keys', { name, type, protection: 'wrapped', ...(name === 'deletable' ? { deletion_allowed: true } : {}) });
  }
  fx.payCiphertext = (await asRoot('POST', '/v1/keys/pay/encrypt', { plaintext: PLAINTEXT })).ciphertext;
  fx.otherCiphertext = (await asRoot('POST', '/v1/keys/other/encrypt', { plaintext: PLAINTEXT })).ciphertext;
  fx.ecSignature = (await asRoot('POST', '/v1/keys/sig/sign', { input: PLAINTEXT })).signature;
  for (const path of ['app/db', 'app/nested/deep', 'application/x', 'other', 'appx']) {
    await asRoot('PUT', `/v1/secrets/${path}`, { data: { owner: 'root', path } });
  }
  await asRoot('DELETE', '/v1/secrets/app/db?versions=1'); // so undelete has something to do
  await asRoot('PUT', '/v1/secrets/app/db', { data: { owner: 'root', v: 2 } });
  await putPolicy('app', [
    { path: 'secrets/app/*', capabilities: ['read', 'create', 'update'] },
    { path: 'keys/pay', capabilities: ['encrypt'] },
  ]);
});

after(async () => {
  if (server) {
    assert.equal(server.process.exitCode, null, 'server still running at the end');
    await server.stop();
  }
});

describe('(a) a token with no policies is refused everywhere', () => {
  // Public routes, and the login (anonymous: its credential is the service-account JWT, not a bearer token).
  const PUBLIC = new Set(['GET /v1/sys/health', 'GET /metrics', 'GET /v1/openapi.json', 'POST /v1/auth/kubernetes/login', 'GET /v1/sys/audit/public-key',
    // Operator accounts (issue 12): logins whose credentials are in the body.
    'POST /v1/auth/operator/login', 'POST /v1/auth/operator/enrol', 'POST /v1/auth/operator/enrol/confirm', 'POST /v1/auth/operator/password',
    // SSO logins (anonymous: the provider's code is the credential).
    'POST /v1/auth/oidc/auth-url', 'POST /v1/auth/oidc/callback', 'GET /v1/auth/oidc/callback',
    // The console's login page: which ways to log in there are (issue 12, console).
    'GET /v1/auth/methods']);
  /** A valid request for every documented operation (path parameters filled in, body where needed). */
  const VALID: Record<string, { path: string; body?: () => unknown }> = {
    'GET /v1/policies': { path: '/v1/policies' },
    'PUT /v1/policies/{name}': { path: '/v1/policies/app', body: () => ({ rules: [{ path: 'secrets/*', capabilities: ['read'] }] }) },
    'GET /v1/policies/{name}': { path: '/v1/policies/app' },
    'DELETE /v1/policies/{name}': { path: '/v1/policies/app' },
    'POST /v1/tokens': { path: '/v1/tokens', body: () => ({ policies: [] }) },
    'GET /v1/tokens/self': { path: '/v1/tokens/self' },
    'DELETE /v1/tokens/self': { path: '/v1/tokens/self' },
    'GET /v1/tokens/accessors': { path: '/v1/tokens/accessors' },
    'GET /v1/tokens/accessors/{accessor}': { path: `/v1/tokens/accessors/kha.${'A'.repeat(32)}` },
    'DELETE /v1/tokens/accessors/{accessor}': { path: `/v1/tokens/accessors/kha.${'A'.repeat(32)}` },
    'GET /v1/keys': { path: '/v1/keys' },
    'POST /v1/keys': { path: '/v1/keys', body: () => ({ name: 'by-nobody', type: 'aes256-gcm', protection: 'wrapped' }) },
    'GET /v1/keys/{name}': { path: '/v1/keys/pay' },
    'DELETE /v1/keys/{name}': { path: '/v1/keys/deletable' },
    'POST /v1/keys/{name}/config': { path: '/v1/keys/pay/config', body: () => ({ disabled: true }) },
    'POST /v1/keys/{name}/rotate': { path: '/v1/keys/pay/rotate' },
    'POST /v1/keys/{name}/encrypt': { path: '/v1/keys/pay/encrypt', body: () => ({ plaintext: PLAINTEXT }) },
    'POST /v1/keys/{name}/decrypt': { path: '/v1/keys/pay/decrypt', body: () => ({ ciphertext: fx.payCiphertext }) },
    'POST /v1/keys/{name}/rewrap': { path: '/v1/keys/pay/rewrap', body: () => ({ ciphertext: fx.payCiphertext }) },
    'POST /v1/keys/{name}/datakey': { path: '/v1/keys/pay/datakey', body: () => ({ bits: 256 }) },
    'POST /v1/keys/{name}/sign': { path: '/v1/keys/sig/sign', body: () => ({ input: PLAINTEXT }) },
    'POST /v1/keys/{name}/verify': { path: '/v1/keys/sig/verify', body: () => ({ input: PLAINTEXT, signature: fx.ecSignature }) },
    'GET /v1/secrets': { path: '/v1/secrets' },
    'GET /v1/secrets/{*}': { path: '/v1/secrets/app/db' },
    'PUT /v1/secrets/{*}': { path: '/v1/secrets/app/db', body: () => ({ data: { owner: 'nobody' } }) },
    'DELETE /v1/secrets/{*}': { path: '/v1/secrets/app/db' },
    'POST /v1/secret-undelete/{*}': { path: '/v1/secret-undelete/app/db', body: () => ({ versions: [1] }) },
    'POST /v1/secret-destroy/{*}': { path: '/v1/secret-destroy/app/db', body: () => ({ versions: [2] }) },
    'GET /v1/secret-metadata/{*}': { path: '/v1/secret-metadata/app/db' },
    'PUT /v1/secret-metadata/{*}': { path: '/v1/secret-metadata/app/db', body: () => ({ max_versions: 1 }) },
    'DELETE /v1/secret-metadata/{*}': { path: '/v1/secret-metadata/app/db' },
    'PUT /v1/auth/kubernetes/config': { path: '/v1/auth/kubernetes/config', body: () => ({ issuer: 'https://evil.example', api_server_url: 'https://127.0.0.1:1' }) },
    'GET /v1/auth/kubernetes/config': { path: '/v1/auth/kubernetes/config' },
    'GET /v1/auth/kubernetes/roles': { path: '/v1/auth/kubernetes/roles' },
    'GET /v1/auth/kubernetes/status': { path: '/v1/auth/kubernetes/status' },
    'PUT /v1/auth/kubernetes/roles/{name}': { path: '/v1/auth/kubernetes/roles/app', body: () => ({ bound_namespaces: ['*'], bound_service_accounts: ['*'], policies: ['root'] }) },
    'GET /v1/auth/kubernetes/roles/{name}': { path: '/v1/auth/kubernetes/roles/app' },
    'DELETE /v1/auth/kubernetes/roles/{name}': { path: '/v1/auth/kubernetes/roles/app' },
    'GET /v1/sys/audit/checkpoint': { path: '/v1/sys/audit/checkpoint' },
    // Quorum approval (src/approvals/).
    'GET /v1/sys/approvals': { path: '/v1/sys/approvals' },
    'GET /v1/sys/approvals/{id}': { path: `/v1/sys/approvals/apr_${'A'.repeat(22)}` },
    'POST /v1/sys/approvals/{id}/approve': { path: `/v1/sys/approvals/apr_${'A'.repeat(22)}/approve`, body: () => ({ params_sha256: 'a'.repeat(64), code: '123456' }) },
    'POST /v1/sys/approvals/{id}/deny': { path: `/v1/sys/approvals/apr_${'A'.repeat(22)}/deny`, body: () => ({ code: '123456' }) },
    'POST /v1/sys/approvals/{id}/cancel': { path: `/v1/sys/approvals/apr_${'A'.repeat(22)}/cancel` },
    'POST /v1/sys/approvals/{id}/execute': { path: `/v1/sys/approvals/apr_${'A'.repeat(22)}/execute` },
    'POST /v1/sys/approvals/sweep': { path: '/v1/sys/approvals/sweep' },
    'GET /v1/sys/approvals/policies': { path: '/v1/sys/approvals/policies' },
    'PUT /v1/sys/approvals/policies/{name}': { path: '/v1/sys/approvals/policies/p', body: () => ({ operations: ['key-rotate'], paths: ['keys/*'], group: 'g', required: 1 }) },
    'GET /v1/sys/approvals/policies/{name}': { path: '/v1/sys/approvals/policies/p' },
    'DELETE /v1/sys/approvals/policies/{name}': { path: '/v1/sys/approvals/policies/p' },
    'PUT /v1/auth/oidc/config': { path: '/v1/auth/oidc/config', body: () => ({ issuer: 'https://evil.example', client_id: 'x', client_secret: 'y', redirect_uris: ['https://evil.example/cb'] }) },
    'GET /v1/auth/oidc/config': { path: '/v1/auth/oidc/config' },
    'DELETE /v1/auth/oidc/config': { path: '/v1/auth/oidc/config' },
    // The console's sessions and audit views (issue 12, console).
    'GET /v1/auth/session': { path: '/v1/auth/session' },
    'POST /v1/auth/logout': { path: '/v1/auth/logout' },
    'POST /v1/auth/token/session': { path: '/v1/auth/token/session' },
    'GET /v1/sys/audit/entries': { path: '/v1/sys/audit/entries' },
    'GET /v1/sys/audit/verify': { path: '/v1/sys/audit/verify' },
    'POST /v1/sys/seal/rotate-root': { path: '/v1/sys/seal/rotate-root' },
    'GET /v1/sys/seal/rotation': { path: '/v1/sys/seal/rotation' },
    // Operator accounts, groups, capabilities (issue 12).
    'POST /v1/sys/operators': { path: '/v1/sys/operators', body: () => ({ name: 'nobody-made', password: 'a long enough password' }) },
    'GET /v1/sys/operators': { path: '/v1/sys/operators' },
    'GET /v1/sys/operators/{name}': { path: '/v1/sys/operators/alice' },
    'DELETE /v1/sys/operators/{name}': { path: '/v1/sys/operators/alice' },
    'POST /v1/sys/operators/{name}/reset': { path: '/v1/sys/operators/alice/reset', body: () => ({ password: 'a long enough password' }) },
    'GET /v1/sys/groups': { path: '/v1/sys/groups' },
    'PUT /v1/sys/groups/{name}': { path: '/v1/sys/groups/admins', body: () => ({ policies: ['root'], members: ['nobody'], external_groups: [] }) },
    'GET /v1/sys/groups/{name}': { path: '/v1/sys/groups/admins' },
    'DELETE /v1/sys/groups/{name}': { path: '/v1/sys/groups/admins' },
    'GET /v1/sys/capabilities': { path: '/v1/sys/capabilities?path=keys/pay' },
  };
  let nobody: string;
  let operations: string[] = [];
  /** What root sees before the refused requests, compared afterwards. */
  const snapshot = async () => ({
    pay: await asRoot('GET', '/v1/keys/pay'),
    deletable: await asRoot('GET', '/v1/keys/deletable'),
    keys: await asRoot('GET', '/v1/keys'),
    policy: await asRoot('GET', '/v1/policies/app'),
    policies: await asRoot('GET', '/v1/policies'),
    secret: await asRoot('GET', '/v1/secrets/app/db'),
    meta: await asRoot('GET', '/v1/secret-metadata/app/db'),
  });
  let before_: Awaited<ReturnType<typeof snapshot>>;

  before(async () => {
    nobody = (await newToken([])).token;
    operations = (await openApiOperations(server.address)).map(([m, p]) => `${m} ${p}`);
    before_ = await snapshot();
  });

  it('the OpenAPI document lists only operations this test knows a valid request for', () => {
    const authenticated = operations.filter((op) => !PUBLIC.has(op));
    assert.ok(authenticated.length >= 25, `${authenticated.length} operations`);
    assert.deepEqual(authenticated.filter((op) => !(op in VALID)), [], 'new routes need a valid request in VALID');
    assert.deepEqual(Object.keys(VALID).filter((op) => !authenticated.includes(op)), [], 'VALID lists routes that no longer exist');
  });

  it('the valid requests are valid: the root token gets no 400 for them (dry run on a scratch policy/secret)', async () => {
    // Read-only and harmless operations only: the point is that the bodies pass validation.
    for (const op of ['GET /v1/policies', 'GET /v1/policies/{name}', 'GET /v1/keys', 'GET /v1/keys/{name}', 'POST /v1/keys/{name}/encrypt',
      'POST /v1/keys/{name}/decrypt', 'POST /v1/keys/{name}/datakey', 'POST /v1/keys/{name}/sign', 'POST /v1/keys/{name}/verify',
      'GET /v1/secrets', 'GET /v1/secrets/{*}', 'GET /v1/secret-metadata/{*}', 'GET /v1/tokens/self']) {
      const spec = VALID[op];
      assert.ok(spec, op);
      const res = await call(root, op.split(' ')[0] as string, spec.path, spec.body?.());
      assertOk(res, 200, op);
    }
  });

  it('every authenticated operation answers 403 ERR_PERMISSION_DENIED', async () => {
    const seen: string[] = [];
    for (const op of operations) {
      if (PUBLIC.has(op)) continue;
      const spec = VALID[op];
      assert.ok(spec, `no valid request for ${op}`);
      const res = await call(nobody, op.split(' ')[0] as string, spec.path, spec.body?.());
      denied(res, op);
      seen.push(op);
    }
    assert.equal(seen.length, Object.keys(VALID).length);
  });

  it('nothing changed: keys, policies, the secret and the token itself are as before', async () => {
    const now = await snapshot();
    assert.deepEqual(now, before_);
    assert.equal(now.pay.latest_version, 1);
    assert.equal(now.pay.disabled, false);
    assert.deepEqual(now.secret.data, { owner: 'root', v: 2 });
    assert.ok(now.meta.versions['1'].deleted_at, 'version 1 is still deleted');
    assertError(await call(root, 'GET', '/v1/keys/by-nobody'), 404, 'ERR_KEY_NOT_FOUND');
    // DELETE /v1/tokens/self was refused, so the token still authenticates (403, not 401).
    denied(await call(nobody, 'GET', '/v1/tokens/self'), 'still valid');
  });

  it('the public endpoints stay public', async () => {
    for (const path of ['/v1/sys/health', '/metrics', '/v1/openapi.json', '/v1/sys/audit/public-key']) {
      assertOk(await call(undefined, 'GET', path), 200, path);
      assertOk(await call(nobody, 'GET', path), 200, `${path} with a policy-less token`);
    }
  });
});

describe('(b) a narrow policy grants exactly what it says', () => {
  let app: string;
  before(async () => {
    app = (await newToken(['app'])).token;
  });

  it('reads, creates and updates secrets under secrets/app/', async () => {
    const read = await call(app, 'GET', '/v1/secrets/app/nested/deep');
    assertOk(read);
    assert.equal(read.body.data.path, 'app/nested/deep');
    assertOk(await call(app, 'PUT', '/v1/secrets/app/new', { data: { by: 'app' } }), 200, 'create');
    assertOk(await call(app, 'PUT', '/v1/secrets/app/new', { data: { by: 'app', v: 2 } }), 200, 'update');
    assertOk(await call(app, 'PUT', '/v1/secrets/app/a/b/c/d', { data: { deep: true } }), 200, 'create deep');
    const back = await call(app, 'GET', '/v1/secrets/app/new?version=1');
    assertOk(back);
    assert.deepEqual(back.body.data, { by: 'app' });
    assertOk(await call(app, 'GET', '/v1/secret-metadata/app/new'), 200, 'metadata read');
    assertOk(await call(app, 'PUT', '/v1/secret-metadata/app/new', { max_versions: 5 }), 204, 'metadata update');
    // A missing secret under the granted prefix is a 404, not a 403.
    assertError(await call(app, 'GET', '/v1/secrets/app/missing'), 404, 'ERR_SECRET_NOT_FOUND');
  });

  it('prefix pitfall: secrets/app/* does not match secrets/application/x, secrets/appx or secrets/app itself', async () => {
    denied(await call(app, 'GET', '/v1/secrets/application/x'), 'read application/x');
    denied(await call(app, 'PUT', '/v1/secrets/application/x', { data: { evil: true } }), 'write application/x');
    denied(await call(app, 'GET', '/v1/secrets/appx'), 'read appx');
    denied(await call(app, 'GET', '/v1/secrets/app'), 'read app');
    denied(await call(app, 'PUT', '/v1/secrets/app', { data: { evil: true } }), 'create app');
    denied(await call(app, 'GET', '/v1/secrets/other'), 'read other');
    denied(await call(app, 'PUT', '/v1/secrets/other', { data: { evil: true } }), 'write other');
    denied(await call(app, 'PUT', '/v1/secrets/brand-new', { data: { evil: true } }), 'create outside');
    const untouched = await asRoot('GET', '/v1/secrets/application/x');
    assert.deepEqual(untouched.data, { owner: 'root', path: 'application/x' });
  });

  it('non-canonical paths never reach the policy check as something else', async () => {
    for (const path of ['/v1/secrets/app/../other', '/v1/secrets/app/%2e%2e/other', '/v1/secrets/app//db', '/v1/secrets/app/./db']) {
      assertError(await call(app, 'GET', path), 400, 'ERR_BAD_REQUEST', path);
    }
  });

  it('cannot delete, destroy or list under secrets/app/', async () => {
    denied(await call(app, 'DELETE', '/v1/secrets/app/new'), 'delete');
    denied(await call(app, 'DELETE', '/v1/secrets/app/new?versions=1'), 'delete versions');
    denied(await call(app, 'POST', '/v1/secret-destroy/app/new', { versions: [1] }), 'destroy');
    denied(await call(app, 'DELETE', '/v1/secret-metadata/app/new'), 'delete metadata');
    denied(await call(app, 'GET', '/v1/secrets/app?list=true'), 'list app/');
    denied(await call(app, 'GET', '/v1/secrets/app/nested?list=true'), 'list app/nested/');
    denied(await call(app, 'GET', '/v1/secrets'), 'list top level');
    const still = await asRoot('GET', '/v1/secrets/app/new');
    assert.equal(still.version, 2);
  });

  it('undelete needs update, which the policy grants', async () => {
    const res = await call(app, 'POST', '/v1/secret-undelete/app/db', { versions: [1] });
    assertOk(res);
    assert.deepEqual(res.body.versions, [1]);
  });

  it('encrypts with keys/pay and nothing else', async () => {
    const enc = await call(app, 'POST', '/v1/keys/pay/encrypt', { plaintext: PLAINTEXT });
    assertOk(enc);
    assert.match(enc.body.ciphertext, /^keyhold:pay:v1:/);
    // Root can decrypt what the app encrypted.
    assert.equal((await asRoot('POST', '/v1/keys/pay/decrypt', { ciphertext: enc.body.ciphertext })).plaintext, PLAINTEXT);
    denied(await call(app, 'POST', '/v1/keys/pay/decrypt', { ciphertext: enc.body.ciphertext }), 'decrypt pay');
    denied(await call(app, 'POST', '/v1/keys/pay/rewrap', { ciphertext: enc.body.ciphertext }), 'rewrap pay (needs decrypt too)');
    denied(await call(app, 'POST', '/v1/keys/other/encrypt', { plaintext: PLAINTEXT }), 'encrypt other');
    denied(await call(app, 'POST', '/v1/keys/other/decrypt', { ciphertext: fx.otherCiphertext }), 'decrypt other');
    denied(await call(app, 'GET', '/v1/keys/pay'), 'read pay');
    denied(await call(app, 'POST', '/v1/keys/pay/rotate'), 'rotate pay');
    denied(await call(app, 'POST', '/v1/keys/pay/config', { min_decryption_version: 1 }), 'configure pay');
    denied(await call(app, 'DELETE', '/v1/keys/deletable'), 'delete key');
    denied(await call(app, 'POST', '/v1/keys/sig/sign', { input: PLAINTEXT }), 'sign');
  });

  it('authorisation comes before existence: an unknown key is 403, not 404', async () => {
    denied(await call(app, 'POST', '/v1/keys/ghost/encrypt', { plaintext: PLAINTEXT }), 'encrypt ghost');
    denied(await call(app, 'GET', '/v1/keys/ghost'), 'read ghost');
  });

  it('cannot create keys, write policies, create tokens or list anything', async () => {
    denied(await call(app, 'POST', '/v1/keys', { name: 'mine', type: 'aes256-gcm', protection: 'wrapped' }), 'create key');
    denied(await call(app, 'POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'wrapped' }), 'create existing key');
    denied(await call(app, 'PUT', '/v1/policies/app', { rules: [{ path: '*', capabilities: ['read'] }] }), 'overwrite own policy');
    denied(await call(app, 'PUT', '/v1/policies/mine', { rules: [{ path: '*', capabilities: ['read'] }] }), 'new policy');
    denied(await call(app, 'DELETE', '/v1/policies/app'), 'delete policy');
    denied(await call(app, 'GET', '/v1/policies/app'), 'read policy');
    denied(await call(app, 'GET', '/v1/policies'), 'list policies');
    denied(await call(app, 'GET', '/v1/keys'), 'list keys');
    denied(await call(app, 'POST', '/v1/tokens', { policies: ['app'] }), 'create token');
    assertError(await call(root, 'GET', '/v1/keys/mine'), 404, 'ERR_KEY_NOT_FOUND');
    assert.equal((await asRoot('GET', '/v1/policies/app')).rules.length, 2);
  });

  it('a policy change applies to existing tokens at once', async () => {
    await putPolicy('lister', [{ path: 'secrets/app', capabilities: ['list'] }, { path: 'keys', capabilities: ['list'] }]);
    const t = (await newToken(['lister'])).token;
    const list = await call(t, 'GET', '/v1/secrets/app?list=true');
    assertOk(list);
    assert.ok(list.body.keys.includes('db'), JSON.stringify(list.body));
    assertOk(await call(t, 'GET', '/v1/keys'), 200, 'list keys');
    denied(await call(t, 'GET', '/v1/secrets'), 'top level needs list on "secrets"');
    denied(await call(t, 'GET', '/v1/secrets/app/nested?list=true'), 'list is not recursive');
    await putPolicy('lister', [{ path: 'secrets', capabilities: ['list'] }]);
    assertOk(await call(t, 'GET', '/v1/secrets'), 200, 'top level after the change');
    denied(await call(t, 'GET', '/v1/secrets/app?list=true'), 'app/ after the change');
    await asRoot('DELETE', '/v1/policies/lister', undefined, 204);
    denied(await call(t, 'GET', '/v1/secrets'), 'after the policy was deleted');
  });
});

describe('(c) deny overrides every grant', () => {
  it('a deny in the same policy wins over a prefix grant', async () => {
    await putPolicy('app-but-db', [
      { path: 'secrets/app/*', capabilities: ['read', 'create', 'update', 'delete'] },
      { path: 'secrets/app/db', capabilities: ['deny'] },
    ]);
    const t = (await newToken(['app-but-db'])).token;
    assertOk(await call(t, 'GET', '/v1/secrets/app/nested/deep'));
    denied(await call(t, 'GET', '/v1/secrets/app/db'), 'read db');
    denied(await call(t, 'PUT', '/v1/secrets/app/db', { data: { evil: true } }), 'write db');
    denied(await call(t, 'DELETE', '/v1/secrets/app/db'), 'delete db');
    denied(await call(t, 'GET', '/v1/secret-metadata/app/db'), 'metadata db');
  });

  it('a deny in another policy of the token wins, including over the same capability granted exactly', async () => {
    await putPolicy('no-pay', [{ path: 'keys/pay', capabilities: ['deny'] }, { path: 'secrets/+/nested/*', capabilities: ['deny'] }]);
    await putPolicy('pay-all', [{ path: 'keys/pay', capabilities: ['encrypt', 'decrypt'] }]);
    const t = (await newToken(['app', 'pay-all', 'no-pay'])).token;
    denied(await call(t, 'POST', '/v1/keys/pay/encrypt', { plaintext: PLAINTEXT }), 'encrypt pay');
    denied(await call(t, 'POST', '/v1/keys/pay/decrypt', { ciphertext: fx.payCiphertext }), 'decrypt pay');
    denied(await call(t, 'GET', '/v1/secrets/app/nested/deep'), 'read app/nested/deep (deny via +)');
    assertOk(await call(t, 'GET', '/v1/secrets/app/db'), 200, 'read app/db still granted');
    // Without the deny policy the same grants work.
    const u = (await newToken(['app', 'pay-all'])).token;
    assertOk(await call(u, 'POST', '/v1/keys/pay/decrypt', { ciphertext: fx.payCiphertext }), 200, 'decrypt pay without deny');
  });

  it('a deny on a prefix covers everything below it, even with other capabilities on the same rule', async () => {
    await putPolicy('deny-all-keys', [{ path: 'keys/*', capabilities: ['encrypt', 'deny'] }, { path: 'keys', capabilities: ['list'] }]);
    const t = (await newToken(['deny-all-keys', 'app'])).token;
    denied(await call(t, 'POST', '/v1/keys/pay/encrypt', { plaintext: PLAINTEXT }), 'encrypt pay');
    assertOk(await call(t, 'GET', '/v1/keys'), 200, '"keys" itself is not below keys/*');
  });
});

describe('(d) tokens cannot grant more than they hold', () => {
  let minter: string;
  before(async () => {
    await putPolicy('minter', [{ path: 'sys/tokens', capabilities: ['create'] }]);
    minter = (await newToken(['minter', 'app'])).token;
  });

  it('cannot create a token with a policy it does not hold', async () => {
    for (const policies of [['root'], ['pay-all'], ['app', 'pay-all'], ['minter', 'app', 'no-such-policy']]) {
      denied(await call(minter, 'POST', '/v1/tokens', { policies }), JSON.stringify(policies));
    }
  });

  it('can create tokens with a subset of its policies, and they work', async () => {
    const child = await newToken(['app'], { display_name: 'child' }, minter);
    assert.match(child.token, /^khs\./);
    const self = await call(child.token, 'GET', '/v1/tokens/self');
    assertOk(self);
    assert.deepEqual(self.body.policies, ['app']);
    assertOk(await call(child.token, 'GET', '/v1/secrets/app/db'), 200, 'child reads app/db');
    denied(await call(child.token, 'POST', '/v1/tokens', { policies: ['app'] }), 'child cannot mint (no minter policy)');
    const same = await newToken(['app', 'minter'], {}, minter);
    assertOk(await call(same.token, 'GET', '/v1/tokens/self'));
    const none = await newToken([], {}, minter);
    denied(await call(none.token, 'GET', '/v1/secrets/app/db'), 'empty subset grants nothing');
  });

  it('a token without sys/tokens create cannot mint even a subset', async () => {
    const app = (await newToken(['app'])).token;
    denied(await call(app, 'POST', '/v1/tokens', { policies: [] }), 'empty subset');
    denied(await call(app, 'POST', '/v1/tokens', { policies: ['app'] }), 'same policies');
  });
});

describe('(e) expired and revoked tokens', () => {
  it('a token with ttl 1 second works, then is refused with 401 after 1.5 s', async () => {
    const numeric = await newToken(['app'], { ttl: 1 });
    const unit = await newToken(['app'], { ttl: '1s' });
    assert.ok(numeric.expires_at && unit.expires_at, 'expires_at is returned');
    const lifetime = Date.parse(numeric.expires_at) - Date.now();
    assert.ok(lifetime > 0 && lifetime <= 1000, `expires within a second (${lifetime} ms)`);
    for (const t of [numeric.token, unit.token]) assertOk(await call(t, 'GET', '/v1/secrets/app/db'), 200, 'before expiry');
    await sleep(1500);
    for (const t of [numeric.token, unit.token]) {
      assertError(await call(t, 'GET', '/v1/secrets/app/db'), 401, 'ERR_UNAUTHENTICATED', 'after expiry');
      assertError(await call(t, 'GET', '/v1/tokens/self'), 401, 'ERR_UNAUTHENTICATED', 'lookup-self after expiry');
      assertError(await call(t, 'DELETE', '/v1/tokens/self'), 401, 'ERR_UNAUTHENTICATED', 'revoke-self after expiry');
    }
  });

  it('a token revoked with DELETE /v1/tokens/self is refused with 401 afterwards', async () => {
    const { token } = await newToken(['app']);
    assertOk(await call(token, 'GET', '/v1/secrets/app/db'), 200, 'before revocation');
    const revoked = await call(token, 'DELETE', '/v1/tokens/self');
    assertOk(revoked, 204, 'revoke-self');
    assert.equal(revoked.text, '');
    for (const [method, path, body] of [['GET', '/v1/tokens/self', undefined], ['GET', '/v1/secrets/app/db', undefined],
      ['PUT', '/v1/secrets/app/db', { data: { after: 'revocation' } }], ['POST', '/v1/keys/pay/encrypt', { plaintext: PLAINTEXT }],
      ['DELETE', '/v1/tokens/self', undefined]] as const) {
      assertError(await call(token, method, path, body), 401, 'ERR_UNAUTHENTICATED', `${method} ${path} after revocation`);
    }
    // Other tokens with the same policy are unaffected, and so is root.
    const other = await newToken(['app']);
    assertOk(await call(other.token, 'GET', '/v1/secrets/app/db'), 200, 'sibling token');
    assertOk(await call(root, 'GET', '/v1/tokens/self'), 200, 'root');
  });
});

describe('(f) lookup-self', () => {
  it('returns the token\'s own record for a token with a policy', async () => {
    const created = await newToken(['app', 'minter'], { ttl: '1h', display_name: 'ci runner@build-7' });
    const res = await call(created.token, 'GET', '/v1/tokens/self');
    assertOk(res);
    assert.equal(res.body.id, created.id);
    assert.match(res.body.id, /^[0-9a-f]{64}$/);
    assert.deepEqual(res.body.policies, ['app', 'minter']);
    assert.equal(res.body.display_name, 'ci runner@build-7');
    assert.equal(res.body.expires_at, created.expires_at);
    const created_at = Date.parse(res.body.created_at);
    const expires_at = Date.parse(res.body.expires_at);
    assert.ok(Math.abs(expires_at - created_at - 3600_000) < 2000, `ttl 1h: ${res.body.created_at} → ${res.body.expires_at}`);
    assert.deepEqual(Object.keys(res.body).sort(), ['accessor', 'created_at', 'display_name', 'expires_at', 'id', 'policies']);
    assert.equal(res.body.accessor, created.accessor);
    assert.ok(!JSON.stringify(res.body).includes(created.token), 'the token itself is never echoed');
  });

  it('works for a token whose only policy was deleted (any valid token may read itself)', async () => {
    await putPolicy('short-lived', [{ path: 'secrets/app/*', capabilities: ['read'] }]);
    const { token } = await newToken(['short-lived']);
    await asRoot('DELETE', '/v1/policies/short-lived', undefined, 204);
    const res = await call(token, 'GET', '/v1/tokens/self');
    assertOk(res);
    assert.deepEqual(res.body.policies, ['short-lived']);
    denied(await call(token, 'GET', '/v1/secrets/app/db'), 'the deleted policy grants nothing');
  });

  it('the server is still healthy', async () => {
    await assertHealthy(server.address);
  });
});
