/**
 * Limits on open approval requests, against a real `keyhold dev` server (SoftHSM, SQLite, audit
 * file) with 3 open requests per person and 6 in all (KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER,
 * KEYHOLD_APPROVALS_MAX_OPEN). Over a limit a protected call answers 429 ERR_APPROVAL_LIMIT,
 * stores nothing and does not act, whichever token of the person calls; the refusal is audited;
 * other persons are not held back by one person's limit; a place frees when a request is
 * cancelled, denied or executed (expiry: retention.test.ts), not when it is merely approved; and
 * many calls at once cannot get past the limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { auditRecords, devServerConfig, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk, type RawResponse } from '../api/api-helpers.js';
import { runCliTimed } from '../server/support.js';
import { approve, createPerson, loginAgain, nextCode, pending, type Person } from './support.js';

const PER_REQUESTER = 3;
const TOTAL = 6;
let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person;
let sam: Person;
let tom: Person;
let una: Person;
let alice: Person;
let bob: Person;

const keyVersion = async (): Promise<number> => (await api.asRoot('GET', '/v1/keys/pay')).latest_version as number;
const rotate = (token: string) => api.call(token, 'POST', '/v1/keys/pay/rotate');
/** Every stored request (as root, who may list), by requester. */
async function stored(): Promise<Map<string, string[]>> {
  const list = await api.asRoot('GET', '/v1/sys/approvals?limit=1000');
  const by = new Map<string, string[]>();
  for (const a of list.approvals as Array<{ id: string; requester: string }>) by.set(a.requester, [...(by.get(a.requester) ?? []), a.id]);
  return by;
}
const count = async (person: Person) => (await stored()).get(`operator:${person.name}`)?.length ?? 0;
const total = async () => [...(await stored()).values()].reduce((n, ids) => n + ids.length, 0);

/** A refusal for a limit: 429 with the code, nothing stored, the key not rotated, and its audit record saying which limit. */
async function assertRefused(res: RawResponse, limit: 'requester' | 'total', before: { stored: number; version: number }): Promise<void> {
  assertError(res, 429, 'ERR_APPROVAL_LIMIT', `a ${limit} limit`);
  assert.equal(res.headers['retry-after'], undefined, 'the limit frees when requests end, not with time');
  assert.equal(await total(), before.stored, 'nothing stored');
  assert.equal(await keyVersion(), before.version, 'nothing ran');
  const outcome = auditRecords(server.dataDir).filter((e) => e.type === 'response' && e.operation === 'keys.rotate').at(-1);
  assert.equal(outcome?.outcome?.status, 429);
  assert.equal(outcome?.outcome?.code, 'ERR_APPROVAL_LIMIT');
  assert.equal(outcome?.fields?.approval_outcome, 'refused-limit');
  assert.equal(outcome?.fields?.approval_limit, limit);
  assert.equal(outcome?.fields?.approval_operation, 'keys.rotate');
  assert.equal(outcome?.fields?.approval_id, undefined, 'no request id: none was made');
}

const snapshot = async () => ({ stored: await total(), version: await keyVersion() });

before(async () => {
  server = await startDev(tempDir(), { KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER: String(PER_REQUESTER), KEYHOLD_APPROVALS_MAX_OPEN: String(TOTAL) });
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
  await api.asRoot('PUT', '/v1/policies/tokens-create', { rules: [{ path: 'sys/tokens', capabilities: ['create'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'tokens-create'], members: ['rita', 'sam', 'tom', 'una'], external_groups: [] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read'], members: ['alice', 'bob'], external_groups: [] });
  [rita, sam, tom, una, alice, bob] = await Promise.all(['rita', 'sam', 'tom', 'una', 'alice', 'bob'].map((name) => createPerson(api, name))) as [Person, Person, Person, Person, Person, Person];
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 1 });
});

after(async () => {
  await server?.stop();
});

describe('limits on open approval requests', () => {
  it('many calls at once by one person: exactly the per-person limit is opened, the rest refused', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, () => rotate(una.token)));
    assert.deepEqual(answers.map((a) => a.status).sort(), [...Array(PER_REQUESTER).fill(202), ...Array(12 - PER_REQUESTER).fill(429)], answers.map((a) => a.text.slice(0, 120)).join('\n'));
    for (const a of answers.filter((x) => x.status === 429)) assertError(a, 429, 'ERR_APPROVAL_LIMIT');
    assert.equal(await count(una), PER_REQUESTER);
    for (const a of answers.filter((x) => x.status === 202)) assertOk(await api.call(una.token, 'POST', `/v1/sys/approvals/${a.body.approval.id as string}/cancel`));
    assert.equal(await total(), PER_REQUESTER, 'cancelled requests stay stored (until the retention sweep)');
  });

  it('a person at the limit is refused (429, nothing stored), with any of their tokens; another person still can request', async () => {
    for (let i = 0; i < PER_REQUESTER; i++) pending(await rotate(rita.token), `rita's request ${i + 1}`);
    await assertRefused(await rotate(rita.token), 'requester', await snapshot());
    // The limit is the person's, not the token's: a second login and a child token are refused alike.
    await assertRefused(await rotate(await loginAgain(api, rita)), 'requester', await snapshot());
    const child = await api.call(rita.token, 'POST', '/v1/tokens', { policies: ['keys-admin'] });
    assertOk(child, 200, 'child token');
    await assertRefused(await rotate(child.body.token as string), 'requester', await snapshot());
    pending(await rotate(sam.token), 'sam is not held back by rita');
    assert.equal(await count(rita), PER_REQUESTER);
  });

  it('the total limit holds for everyone, persons under their own limit included', async () => {
    pending(await rotate(sam.token));
    // una's 3 cancelled + rita's 3 + sam's 2 stored; 5 open.
    pending(await rotate(tom.token));
    await assertRefused(await rotate(tom.token), 'total', await snapshot());
    await assertRefused(await rotate(sam.token), 'total', await snapshot());
    // rita is over both: the per-person limit is named first.
    await assertRefused(await rotate(rita.token), 'requester', await snapshot());
  });

  it('a cancelled request frees its place at once', async () => {
    const mine = (await stored()).get('operator:rita') ?? [];
    assertOk(await api.call(rita.token, 'POST', `/v1/sys/approvals/${mine[0] as string}/cancel`));
    pending(await rotate(tom.token), 'the total place freed by rita');
    await assertRefused(await rotate(rita.token), 'total', await snapshot());
  });

  it('a denied request frees its place; an approved one does not; an executed one does', async () => {
    const open = async (p: Person) => (await api.asRoot('GET', '/v1/sys/approvals?state=pending&limit=1000')).approvals.filter((a: { requester: string }) => a.requester === `operator:${p.name}`);
    const [ritas, sams] = [await open(rita), await open(sam)];
    const code = await nextCode(alice);
    assertOk(await api.call(alice.token, 'POST', `/v1/sys/approvals/${ritas[0].id as string}/deny`, { code }), 200, 'alice denies');
    pending(await rotate(rita.token), 'rita again, in the place her denied request left');
    // Approved: still open (it can still run), so it still counts.
    const approved = await approve(api, bob, sams[0].id, sams[0].params_sha256);
    assertOk(approved);
    assert.equal(approved.body.state, 'approved');
    await assertRefused(await rotate(tom.token), 'total', await snapshot());
    const version = await keyVersion();
    assertOk(await api.call(sam.token, 'POST', `/v1/sys/approvals/${sams[0].id as string}/execute`), 200, 'sam executes');
    assert.equal(await keyVersion(), version + 1);
    pending(await rotate(tom.token), 'tom, in the place the executed request left');
    await assertRefused(await rotate(sam.token), 'total', await snapshot());
  });

  it('a refused call opened nothing: every stored request is one that was answered 202', async () => {
    const opened = auditRecords(server.dataDir).filter((e) => e.type === 'response' && e.operation === 'keys.rotate' && e.outcome?.status === 202).map((e) => e.fields?.approval_id);
    const all = [...(await stored()).values()].flat();
    assert.deepEqual([...all].sort(), [...opened].sort());
  });
});

describe('the CLI and the config', () => {
  const cli = (args: string[]) => runCliTimed(args, { KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: server.rootToken }, 30_000);

  it('`keyhold approval list --state --limit` and `keyhold approval sweep`', async () => {
    const listed = await cli(['approval', 'list', '--state', 'pending', '--limit', '1']);
    assert.equal(listed.code, 0, listed.stderr);
    const body = JSON.parse(listed.stdout) as { approvals: Array<{ state: string }>; truncated?: boolean };
    assert.equal(body.approvals.length, 1);
    assert.equal(body.approvals[0]?.state, 'pending');
    assert.equal(body.truncated, true);
    const refused = await cli(['approval', 'list', '--limit', '1001']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /ERR_BAD_REQUEST/);
    const swept = await cli(['approval', 'sweep']);
    assert.equal(swept.code, 0, swept.stderr);
    assert.deepEqual(JSON.parse(swept.stdout), { deleted: 0, retention_seconds: 30 * 24 * 3600 });
  });

  it('a server with a bad limit or retention does not start, and says which setting', async () => {
    // `keyhold dev` (KEYHOLD_APPROVALS_* honoured) and `keyhold server --config` on this server's data dir, left untouched.
    for (const [name, value, field] of [['KEYHOLD_APPROVALS_MAX_OPEN', '0', 'approvals/maxOpen'], ['KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER', '-1', 'approvals/maxOpenPerRequester'],
      ['KEYHOLD_APPROVALS_RETENTION_SECONDS', '1.5', 'approvals/retentionSeconds'], ['KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS', '86401', 'approvals/sweepIntervalSeconds']] as const) {
      const res = await runCliTimed(['dev', '--data-dir', tempDir(), '--listen', '127.0.0.1:0'], { [name]: value }, 30_000);
      assert.equal(res.code, 1, `${name}=${value}: ${res.stdout}${res.stderr}`);
      assert.match(res.stderr, /ERR_CONFIG/);
      assert.ok(res.stderr.includes(field), res.stderr);
    }
    const file = join(tempDir(), 'keyhold.yaml');
    writeFileSync(file, stringifyYaml(devServerConfig(server.dataDir, { approvals: { maxOpenPerRequester: 30, maxOpen: 20 } })));
    const res = await runCliTimed(['server', '--config', file], { SOFTHSM2_CONF: join(server.dataDir, 'softhsm2.conf') }, 30_000);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stderr, /approvals\.maxOpenPerRequester \(30\) must not exceed approvals\.maxOpen \(20\)/);
  });
});
