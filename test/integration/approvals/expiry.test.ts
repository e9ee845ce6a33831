/**
 * Expiry of approval requests, on a real `keyhold dev` server whose requests live 6 s
 * (KEYHOLD_APPROVALS_TTL_SECONDS): past expires_at a request can be neither approved nor executed
 * (nor cancelled), whether it was still pending or already approved, and shows as expired.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../../helpers/processes.js';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { approve, createPerson, nextCode, pending, type Pending, type Person } from './support.js';

const TTL_SECONDS = 6;
let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person;
let alice: Person;
let bob: Person;

const keyVersion = async (): Promise<number> => (await api.asRoot('GET', '/v1/keys/pay')).latest_version as number;
const untilExpired = async (p: Pending) => sleep(Math.max(0, Date.parse(p.expires_at) - Date.now()) + 300);

before(async () => {
  server = await startDev(tempDir(), { KEYHOLD_APPROVALS_TTL_SECONDS: String(TTL_SECONDS) });
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin'], members: ['rita'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  alice = await createPerson(api, 'alice');
  bob = await createPerson(api, 'bob');
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 2 });
});

after(async () => {
  await server?.stop();
});

describe('an expired request', () => {
  it('expires after approvals.ttlSeconds', async () => {
    const p = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    const lifetime = Date.parse(p.expires_at) - Date.now();
    assert.ok(lifetime > 0 && lifetime <= TTL_SECONDS * 1000, `expires in ${lifetime} ms`);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/cancel`);
  });

  it('cannot be approved (it was pending), shows as expired, and cannot be cancelled', async () => {
    // The code first (it may mean waiting for a TOTP step), then the request and its approval at once.
    const code = await nextCode(alice);
    const p = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assertOk(await api.call(alice.token, 'POST', `/v1/sys/approvals/${p.id}/approve`, { params_sha256: p.params_sha256, code }), 200, 'in time');
    await untilExpired(p);
    assertError(await approve(api, bob, p.id, p.params_sha256, bob.token, true), 409, 'ERR_APPROVAL_EXPIRED');
    const shown = await api.call(alice.token, 'GET', `/v1/sys/approvals/${p.id}`);
    assert.equal(shown.body.state, 'expired');
    assert.equal(shown.body.approvals.length, 1);
    const listed = await api.call(alice.token, 'GET', '/v1/sys/approvals?state=expired');
    assert.ok(listed.body.approvals.some((a: { id: string }) => a.id === p.id));
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/cancel`), 409, 'ERR_APPROVAL_EXPIRED');
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/execute`), 409, 'ERR_APPROVAL_EXPIRED');
  });

  it('cannot be executed once expired, even though it was approved in time; nothing runs', async () => {
    const version = await keyVersion();
    const codes = [await nextCode(alice), await nextCode(bob)];
    const p = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assertOk(await api.call(alice.token, 'POST', `/v1/sys/approvals/${p.id}/approve`, { params_sha256: p.params_sha256, code: codes[0] }));
    const approved = await api.call(bob.token, 'POST', `/v1/sys/approvals/${p.id}/approve`, { params_sha256: p.params_sha256, code: codes[1] });
    assertOk(approved);
    assert.equal(approved.body.state, 'approved');
    await untilExpired(p);
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${p.id}/execute`), 409, 'ERR_APPROVAL_EXPIRED');
    assert.equal(await keyVersion(), version);
    assert.equal((await api.call(alice.token, 'GET', `/v1/sys/approvals/${p.id}`)).body.state, 'expired');
  });
});
