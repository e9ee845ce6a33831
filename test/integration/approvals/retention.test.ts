/**
 * Expiry freeing a place, and the retention sweep of ended approval requests, against a real
 * `keyhold dev` server whose requests live 8 s, are kept 2 s after they end and are swept every
 * second (KEYHOLD_APPROVALS_TTL_SECONDS, _RETENTION_SECONDS, _SWEEP_INTERVAL_SECONDS). The sweep
 * deletes a request only once it has ended (denied, cancelled, executed, expired) and the
 * retention has passed since, never an open one; a deleted request answers 404 everywhere; each
 * pass is one audit record with its count, and over the server's life the counts add up to every
 * request it made. A second server with retention 0 deletes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../../helpers/processes.js';
import { auditRecords, startDev, tempDir, type AuditLine, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { createPerson, nextCode, pending, type Pending, type Person } from './support.js';

const TTL_SECONDS = 8;
const RETENTION_SECONDS = 2;
let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person;
let sam: Person;
let tom: Person;
let alice: Person;
let bob: Person;
let carol: Person;

const rotate = (p: Person) => api.call(p.token, 'POST', '/v1/keys/pay/rotate');
const show = (id: string) => api.call(server.rootToken, 'GET', `/v1/sys/approvals/${id}`);
/** The passes' own records (the API route's request and response records are `approvals.sweep`). */
const sweepRecords = (from = 0): AuditLine[] => auditRecords(server.dataDir).slice(from).filter((e) => e.operation === 'approvals.sweep-pass');
const deletedIn = (records: AuditLine[]) => records.reduce((n, e) => n + Number(e.fields?.approval_sweep_deleted), 0);

/** When the request was first found gone (polling every 100 ms). */
async function goneAt(id: string, timeoutMs = 20_000): Promise<number> {
  return pollUntil(`request ${id} deleted`, async () => ((await show(id)).status === 404 ? Date.now() : false), { timeoutMs, intervalMs: 100 });
}

before(async () => {
  server = await startDev(tempDir(), {
    KEYHOLD_APPROVALS_TTL_SECONDS: String(TTL_SECONDS), KEYHOLD_APPROVALS_RETENTION_SECONDS: String(RETENTION_SECONDS),
    KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS: '1', KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER: '2',
  });
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'approvals-read'], members: ['rita', 'sam', 'tom'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob', 'carol'], external_groups: [] });
  for (const name of ['rita', 'sam', 'tom', 'alice', 'bob', 'carol']) {
    const p = await createPerson(api, name);
    if (name === 'rita') rita = p; else if (name === 'sam') sam = p; else if (name === 'tom') tom = p;
    else if (name === 'alice') alice = p; else if (name === 'bob') bob = p; else carol = p;
  }
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 1 });
});

after(async () => {
  await server?.stop();
});

describe('expiry and the retention sweep', () => {
  it('an expired request frees its place under the per-person limit', async () => {
    const opened = [pending(await rotate(rita)), pending(await rotate(rita))];
    assertError(await rotate(rita), 429, 'ERR_APPROVAL_LIMIT');
    await sleep(Math.max(...opened.map((p) => Date.parse(p.expires_at))) - Date.now() + 200);
    const again = pending(await rotate(rita), 'in the place of the expired ones');
    assertOk(await api.call(rita.token, 'POST', `/v1/sys/approvals/${again.id}/cancel`));
    await Promise.all([...opened, again].map((p) => goneAt(p.id)));
  });

  it('deletes ended requests once the retention has passed since they ended, and never an open one', async () => {
    const start = auditRecords(server.dataDir).length;
    // Codes first (one may mean waiting for a TOTP step): then every step at once.
    const [aliceCode, bobCode, carolCode] = [await nextCode(alice), await nextCode(bob), await nextCode(carol)];
    const open = pending(await rotate(rita), 'stays pending');
    const toExecute = pending(await rotate(rita));
    const toDeny = pending(await rotate(sam));
    const stillApproved = pending(await rotate(sam), 'stays approved');
    const toCancel = pending(await rotate(tom));
    const approveAs = (p: Person, r: Pending, code: string) => api.call(p.token, 'POST', `/v1/sys/approvals/${r.id}/approve`, { params_sha256: r.params_sha256, code });
    assertOk(await api.call(tom.token, 'POST', `/v1/sys/approvals/${toCancel.id}/cancel`));
    assertOk(await api.call(alice.token, 'POST', `/v1/sys/approvals/${toDeny.id}/deny`, { code: aliceCode }));
    assertOk(await approveAs(bob, toExecute, bobCode));
    assertOk(await api.call(rita.token, 'POST', `/v1/sys/approvals/${toExecute.id}/execute`));
    assertOk(await approveAs(carol, stillApproved, carolCode));
    const endedAt = async (id: string, field: string) => Date.parse((await show(id)).body[field] as string);
    const ended = { [toCancel.id]: await endedAt(toCancel.id, 'cancelled_at'), [toDeny.id]: await endedAt(toDeny.id, 'denied_at'), [toExecute.id]: await endedAt(toExecute.id, 'executed_at') };

    const gone = await Promise.all(Object.keys(ended).map(async (id) => [id, await goneAt(id)] as const));
    for (const [id, at] of gone) assert.ok(at >= (ended[id] as number) + RETENTION_SECONDS * 1000, `${id} deleted ${at - (ended[id] as number)} ms after it ended`);
    // The open ones are all still there, as they were.
    assert.equal((await show(open.id)).body.state, 'pending');
    assert.equal((await show(stillApproved.id)).body.state, 'approved');

    // A deleted request is unknown everywhere.
    for (const [id] of gone) {
      assertError(await show(id), 404, 'ERR_APPROVAL_NOT_FOUND', 'show');
      assertError(await api.call(alice.token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: toExecute.params_sha256, code: '123456' }), 404, 'ERR_APPROVAL_NOT_FOUND', 'approve');
      assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/execute`), 404, 'ERR_APPROVAL_NOT_FOUND', 'execute');
      assertError(await api.call(tom.token, 'POST', `/v1/sys/approvals/${id}/cancel`), 404, 'ERR_APPROVAL_NOT_FOUND', 'cancel');
    }

    // Pending and approved ones go only once they have expired, and the retention has passed since.
    for (const p of [open, stillApproved]) {
      const at = await goneAt(p.id);
      assert.ok(at >= Date.parse(p.expires_at) + RETENTION_SECONDS * 1000, `${p.id} deleted ${at - Date.parse(p.expires_at)} ms after it expired`);
    }
    const records = sweepRecords(start);
    assert.equal(deletedIn(records), 5, 'the passes deleted the five requests, each once');
    for (const e of records) {
      assert.equal(e.outcome?.status, 200);
      assert.equal(e.actor, undefined);
      assert.equal(e.path, 'sys/approvals/requests');
      assert.equal(e.fields?.approval_sweep_trigger, 'timer');
      assert.equal(e.fields?.approval_retention_seconds, String(RETENTION_SECONDS));
      assert.ok(Number(e.fields?.approval_sweep_deleted) >= 1, 'a pass that deleted nothing writes no record');
      assert.equal(e.fields?.approval_id, undefined, 'one record per pass, not one per request');
    }
  });

  it('a pass is audited once, with the count it deleted: not once per request', async () => {
    const start = auditRecords(server.dataDir).length;
    const batch: Pending[] = [];
    for (const p of [rita, rita, sam, sam, tom, tom]) batch.push(pending(await rotate(p)));
    const owner = [rita, rita, sam, sam, tom, tom];
    // Ended within a few milliseconds of each other; passes are a second apart, so at most two passes share them.
    const answers = await Promise.all(batch.map((p, i) => api.call((owner[i] as Person).token, 'POST', `/v1/sys/approvals/${p.id}/cancel`)));
    for (const a of answers) assertOk(a);
    await Promise.all(batch.map((p) => goneAt(p.id)));
    const records = sweepRecords(start);
    assert.equal(deletedIn(records), batch.length);
    assert.ok(records.length <= 2, `${records.length} sweep records for ${batch.length} requests ended at once`);
  });

  it('POST /v1/sys/approvals/sweep runs a pass now: `delete` on sys/approvals/requests needed', async () => {
    assertError(await api.call(rita.token, 'POST', '/v1/sys/approvals/sweep'), 403, 'ERR_PERMISSION_DENIED');
    const res = await api.call(server.rootToken, 'POST', '/v1/sys/approvals/sweep');
    assertOk(res);
    assert.deepEqual(Object.keys(res.body).sort(), ['deleted', 'retention_seconds']);
    assert.equal(res.body.retention_seconds, RETENTION_SECONDS);
    assert.equal(res.body.deleted, 0, 'everything ended was swept already');
    assertError(await api.call(server.rootToken, 'POST', '/v1/sys/approvals/sweep', {}), 400, 'ERR_BAD_REQUEST');
  });

  it('over the server\'s life, the passes deleted every request it made, each once', async () => {
    const made = auditRecords(server.dataDir).filter((e) => e.type === 'response' && e.operation === 'keys.rotate' && e.outcome?.status === 202).length;
    assert.equal((await api.asRoot('GET', '/v1/sys/approvals?limit=1000')).approvals.length, 0);
    assert.equal(deletedIn(sweepRecords()), made);
  });
});

describe('retention 0: ended requests are kept', () => {
  let kept: DevServer;
  const keptApi = apiCaller(() => ({ address: kept.address, root: kept.rootToken }));
  let vera: Person;
  before(async () => {
    kept = await startDev(tempDir(), { KEYHOLD_APPROVALS_RETENTION_SECONDS: '0', KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS: '1', KEYHOLD_APPROVALS_TTL_SECONDS: '1' });
    await keptApi.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
    await keptApi.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['keys-admin'], members: ['vera'], external_groups: [] });
    await keptApi.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
    // Before the policy: it protects its group's accounts.
    vera = await createPerson(keptApi, 'vera');
    await keptApi.asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 1 });
  });
  after(async () => {
    await kept?.stop();
  });

  it('neither the timer nor the API deletes anything', async () => {
    const cancelled = pending(await keptApi.call(vera.token, 'POST', '/v1/keys/pay/rotate'));
    assertOk(await keptApi.call(vera.token, 'POST', `/v1/sys/approvals/${cancelled.id}/cancel`));
    const expired = pending(await keptApi.call(vera.token, 'POST', '/v1/keys/pay/rotate'));
    await sleep(3500);
    assert.equal((await keptApi.call(kept.rootToken, 'GET', `/v1/sys/approvals/${cancelled.id}`)).body.state, 'cancelled');
    assert.equal((await keptApi.call(kept.rootToken, 'GET', `/v1/sys/approvals/${expired.id}`)).body.state, 'expired');
    assert.deepEqual(await keptApi.asRoot('POST', '/v1/sys/approvals/sweep'), { deleted: 0, retention_seconds: 0 });
    assert.equal(auditRecords(kept.dataDir).filter((e) => e.operation === 'approvals.sweep-pass').length, 0);
  });
});
