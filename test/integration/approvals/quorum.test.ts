/**
 * Quorum approval against a real `keyhold dev` server (real SoftHSM, SQLite, audit file), with
 * real operator accounts made through the API by the root token, enrolled with TOTP and logged in:
 * a protected call opens a request (202) instead of acting; M distinct members of the policy's
 * group approve with their second factor, stating the hash of the parameters they saw; the
 * requester executes it once, with exactly those parameters. And every way around that refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { timeStepAt, totpCodeAt } from '../../../src/operators/totp.js';
import { CLI, startDev, tempDir, type DevServer, type AuditLine } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk, b64, request, type RawResponse } from '../api/api-helpers.js';
import { login, PASSWORD } from '../operators/support.js';
import { approve, createPerson, loginAgain, nextCode, pending, type Pending, type Person } from './support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person; // the requester
let custodians: Person[]; // the approvers' group: alice, bob, carol, dave, erin, frank
let alice: Person;
let bob: Person;
let carol: Person;
let mallory: Person; // a person outside the group, with the same key rights as rita
let reader: Person; // a person with no right on approval requests
/** Every second-factor code sent: none may be in the audit log. */
const codesSent = new Set<string>();

const keyVersion = async (name: string): Promise<number> => (await api.asRoot('GET', `/v1/keys/${name}`)).latest_version as number;
const show = (id: string, token = alice.token) => api.call(token, 'GET', `/v1/sys/approvals/${id}`);
const execute = (id: string, token = rita.token) => api.call(token, 'POST', `/v1/sys/approvals/${id}/execute`);

/** The custodians whose next code is soonest, so the tests rarely wait for a TOTP step. */
function freshest(n: number, except: Person[] = []): Person[] {
  return custodians.filter((p) => !except.includes(p)).sort((a, b) => a.lastStep - b.lastStep).slice(0, n);
}

/** `refused`: expected to be refused before the second factor is looked at (its TOTP step stays unused). */
async function approveAs(person: Person, id: string, hash: string, token = person.token, refused = false): Promise<RawResponse> {
  const res = await approve(api, person, id, hash, token, refused);
  if (!refused) codesSent.add(person.lastCode);
  return res;
}

/** Approves with the `n` freshest custodians; the last answer. */
async function approveBy(n: number, id: string, hash: string, except: Person[] = []): Promise<any> {
  let last: RawResponse | undefined;
  for (const p of freshest(n, except)) {
    last = await approveAs(p, id, hash);
    assertOk(last, 200, `${p.name} approves ${id}`);
  }
  return last?.body;
}

/** A code that is not valid for `person` now (none of the three steps the server accepts). */
async function wrongCode(person: Person): Promise<string> {
  const step = timeStepAt(Date.now());
  const valid = new Set(await Promise.all([-1, 0, 1, 2].map((d) => totpCodeAt(person.secret, (step + d) * 30_000 + 1000))));
  for (const candidate of ['000000', '111111', '222222', '333333']) if (!valid.has(candidate)) return candidate;
  throw new Error('unreachable');
}

function auditLines(): AuditLine[] {
  return readFileSync(join(server.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditLine);
}

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys', capabilities: ['list'] }, { path: 'keys/*', capabilities: ['read', 'create', 'update', 'rotate', 'delete', 'encrypt', 'decrypt'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-read', { rules: [{ path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/requests/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/policies/approval-admin', { rules: [{ path: 'sys/approvals/policies', capabilities: ['list'] }, { path: 'sys/approvals/policies/*', capabilities: ['read', 'update', 'delete'] }] });
  await api.asRoot('PUT', '/v1/policies/tokens-create', { rules: [{ path: 'sys/tokens', capabilities: ['create'] }] });
  await api.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys/*', capabilities: ['read'] }] });
  await api.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin', 'approval-admin', 'tokens-create'], members: ['rita'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['approvals-read', 'tokens-create'], members: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/outsiders', { policies: ['keys-admin', 'approvals-read'], members: ['mallory'], external_groups: [] });
  await api.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['rory'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  alice = await createPerson(api, 'alice');
  bob = await createPerson(api, 'bob');
  carol = await createPerson(api, 'carol');
  // More custodians than any quorum here needs: each can give about three TOTP codes per 30 s.
  custodians = [alice, bob, carol];
  for (const name of ['dave', 'erin', 'frank']) custodians.push(await createPerson(api, name));
  mallory = await createPerson(api, 'mallory');
  reader = await createPerson(api, 'rory');
  for (const name of ['pay', 'pay-cfg', 'free']) await api.asRoot('POST', '/v1/keys', { name, type: 'aes256-gcm', protection: 'hsm' });
});

after(async () => {
  await server?.stop();
});

describe('before any approval policy', () => {
  it('a protectable operation runs at once (200), for a person and for root', async () => {
    assertOk(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 200);
    assertOk(await api.call(server.rootToken, 'POST', '/v1/keys/pay/rotate'), 200);
    assert.equal(await keyVersion('pay'), 3);
  });

  it('an approval policy whose quorum can never be met is refused', async () => {
    assertError(await api.call(server.rootToken, 'PUT', '/v1/sys/approvals/policies/too-many', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 7 }), 400, 'ERR_APPROVAL_POLICY_INVALID');
    assertError(await api.call(server.rootToken, 'PUT', '/v1/sys/approvals/policies/no-group', { operations: ['key-rotate'], paths: ['keys/*'], group: 'nobody', required: 1 }), 400, 'ERR_APPROVAL_POLICY_INVALID');
    assertError(await api.call(server.rootToken, 'PUT', '/v1/sys/approvals/policies/typo', { operations: ['keys.rotat'], paths: ['keys/*'], group: 'custodians', required: 2 }), 400, 'ERR_APPROVAL_POLICY_INVALID');
    assert.deepEqual((await api.asRoot('GET', '/v1/sys/approvals/policies')).policies, []);
  });

  it('root creates the first one (nothing protects creating it yet)', async () => {
    const policy = await api.asRoot('PUT', '/v1/sys/approvals/policies/key-quorum', { operations: ['key-lifecycle'], paths: ['keys/pay*'], group: 'custodians', required: 2 });
    assert.equal(policy.required, 2);
    assert.deepEqual((await api.asRoot('GET', '/v1/sys/approvals/policies')).policies, ['key-quorum']);
  });
});

describe('unprotected routes are unaffected', () => {
  it('operations and paths no policy names run at once', async () => {
    const before_ = await keyVersion('free');
    assertOk(await api.call(rita.token, 'POST', '/v1/keys/free/rotate'), 200, 'a key outside keys/pay*');
    assert.equal(await keyVersion('free'), before_ + 1);
    assertOk(await api.call(rita.token, 'POST', '/v1/keys/pay/encrypt', { plaintext: b64('hello') }), 200, 'encrypt is not protectable');
    assertOk(await api.call(rita.token, 'POST', '/v1/keys', { name: 'pay-new', type: 'aes256-gcm', protection: 'hsm' }), 200, 'create is not protected');
    assertOk(await api.call(rita.token, 'GET', '/v1/keys/pay'), 200);
    assertOk(await api.call(server.rootToken, 'PUT', '/v1/policies/scratch', { rules: [{ path: 'keys/x', capabilities: ['read'] }] }), 200);
    assert.equal((await api.call(server.rootToken, 'POST', '/v1/keys/free/rotate')).status, 200, 'root too');
  });
});

describe('a key rotation that needs 2 of 3', () => {
  let id: string;
  let hash: string;
  let version: number;
  let approvers: Person[];

  it('answers 202 with the request, and does not rotate', async () => {
    version = await keyVersion('pay');
    const approval = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    ({ id, params_sha256: hash } = approval);
    assert.match(id, /^apr_[A-Za-z0-9_-]{22}$/);
    assert.equal(approval.operation, 'keys.rotate');
    assert.equal(approval.path, 'keys/pay');
    assert.equal(approval.required, 2);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.ok(Date.parse(approval.expires_at) > Date.now() + 23 * 3600_000, 'expires in 24 h by default');
    assert.equal(await keyVersion('pay'), version);
  });

  it('shows approvers the operation, method, URL, body and hash', async () => {
    const res = await show(id);
    assertOk(res);
    assert.equal(res.body.state, 'pending');
    assert.equal(res.body.method, 'POST');
    assert.equal(res.body.url, '/v1/keys/pay/rotate');
    assert.equal(res.body.body, null);
    assert.equal(res.body.params_sha256, hash);
    assert.equal(res.body.requester, 'operator:rita');
    assert.deepEqual(res.body.rules, [{ policy: 'key-quorum', group: 'custodians', required: 2, approvals: 0 }]);
  });

  it('one approval is not enough: still pending, and the requester cannot execute yet', async () => {
    approvers = freshest(2);
    const res = await approveAs(approvers[0] as Person, id, hash);
    assertOk(res);
    assert.equal(res.body.state, 'pending');
    assert.equal(res.body.approvals.length, 1);
    assertError(await execute(id), 409, 'ERR_APPROVAL_STATE');
    assert.equal(await keyVersion('pay'), version);
  });

  it('the second distinct member approves it; only the requester may execute', async () => {
    const res = await approveAs(approvers[1] as Person, id, hash);
    assertOk(res);
    assert.equal(res.body.state, 'approved');
    assertError(await execute(id, alice.token), 403, 'ERR_APPROVAL_NOT_REQUESTER');
    assertError(await execute(id, server.rootToken), 403, 'ERR_APPROVAL_NOT_PERSON');
    assert.equal(await keyVersion('pay'), version);
  });

  it('executes once: the answer is the rotation\'s own, and the version moves by exactly one', async () => {
    const res = await execute(id);
    assertOk(res, 200);
    assert.equal(res.body.name, 'pay');
    assert.equal(res.body.latest_version, version + 1);
    assert.equal(await keyVersion('pay'), version + 1);
    const after_ = await show(id);
    assert.equal(after_.body.state, 'executed');
    assert.equal(after_.body.execution_status, 200);
  });

  it('a replayed execution does nothing (409)', async () => {
    assertError(await execute(id), 409, 'ERR_APPROVAL_STATE');
    assertError(await execute(id, await loginAgain(api, rita)), 409, 'ERR_APPROVAL_STATE', 'with another token of the requester');
    assert.equal(await keyVersion('pay'), version + 1);
  });

  it('every step is audited with the request id, and no second-factor code is in the log', () => {
    const lines = auditLines();
    const mine = lines.filter((l) => l.fields?.approval_id === id && l.type === 'response' && l.operation !== 'approvals.read');
    const summary = mine.map((l) => `${l.operation} ${l.outcome?.status} ${l.fields?.approval_outcome ?? ''}`);
    assert.deepEqual(summary, [
      'keys.rotate 202 pending',
      'approvals.approve 200 approval-recorded',
      'approvals.execute 409 ',
      'approvals.approve 200 approved',
      'approvals.execute 403 ',
      'approvals.execute 403 ',
      'keys.rotate 200 executing',
      'approvals.execute 200 executed',
      'approvals.execute 409 ',
      'approvals.execute 409 ',
    ]);
    // Exactly one rotation ran under this request.
    assert.equal(lines.filter((l) => l.operation === 'keys.rotate' && l.type === 'response' && l.outcome?.status === 200 && l.fields?.approval_id === id).length, 1);
    const text = readFileSync(join(server.dataDir, 'audit.log'), 'utf8');
    for (const code of codesSent) assert.ok(!text.includes(`"${code}"`), `code ${code} is in the audit log`);
  });
});

describe('who can approve', () => {
  let id: string;
  let hash: string;

  before(async () => {
    ({ id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate')));
  });

  it('not the requester, with any of their tokens (a second login, a child token)', async () => {
    assertError(await approveAs(rita, id, hash, rita.token, true), 403, 'ERR_APPROVAL_SELF');
    assertError(await approveAs(rita, id, hash, await loginAgain(api, rita), true), 403, 'ERR_APPROVAL_SELF', 'second login');
    const child = await api.call(rita.token, 'POST', '/v1/tokens', { policies: ['tokens-create'] });
    assertOk(child);
    assertError(await approveAs(rita, id, hash, child.body.token, true), 403, 'ERR_APPROVAL_SELF', 'child token');
    assert.equal((await show(id)).body.approvals.length, 0);
  });

  it('not a person outside the policy\'s group, nor a person without an operator account role in it', async () => {
    assertError(await approveAs(mallory, id, hash, mallory.token, true), 403, 'ERR_APPROVAL_NOT_APPROVER');
    assertError(await approveAs(reader, id, hash, reader.token, true), 403, 'ERR_APPROVAL_NOT_APPROVER');
  });

  it('not the root token, nor a token made from it: they are not persons', async () => {
    assertError(await api.call(server.rootToken, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: hash, code: '123456' }), 403, 'ERR_APPROVAL_NOT_PERSON');
    const child = await api.asRoot('POST', '/v1/tokens', { policies: ['approvals-read'] });
    assertError(await api.call(child.token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: hash, code: '123456' }), 403, 'ERR_APPROVAL_NOT_PERSON');
  });

  it('one person counts once, whatever tokens they hold', async () => {
    const [first] = freshest(1);
    const person = first as Person;
    const once = await approveAs(person, id, hash);
    assertOk(once);
    assert.equal(once.body.approvals.length, 1);
    assertError(await approveAs(person, id, hash, person.token, true), 409, 'ERR_APPROVAL_ALREADY_DECIDED', 'same token');
    assertError(await approveAs(person, id, hash, await loginAgain(api, person), true), 409, 'ERR_APPROVAL_ALREADY_DECIDED', 'another login');
    const child = await api.call(person.token, 'POST', '/v1/tokens', { policies: ['approvals-read'] });
    assertOk(child);
    assertError(await approveAs(person, id, hash, child.body.token, true), 409, 'ERR_APPROVAL_ALREADY_DECIDED', 'a child token');
    const now = await show(id);
    assert.equal(now.body.state, 'pending');
    assert.deepEqual(now.body.approvals.map((a: { person: string }) => a.person), [`operator:${person.name}`]);
    assert.equal(now.body.rules[0].approvals, 1);
  });

});

describe('second factor on approval', () => {
  let id: string;
  let hash: string;

  before(async () => {
    ({ id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate')));
  });

  it('a wrong code is refused (401) and records nothing', async () => {
    const [p] = freshest(1);
    const person = p as Person;
    assertError(await api.call(person.token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: hash, code: await wrongCode(person) }), 401, 'ERR_SECOND_FACTOR_INVALID');
    assert.equal((await show(id)).body.approvals.length, 0);
  });

  it('a code already used (replayed inside its window) is refused (401) and records nothing', async () => {
    const [p] = freshest(1);
    const person = p as Person;
    const replayed = await nextCode(person);
    assertOk(await login(api, { username: person.name, password: PASSWORD, totp: replayed }), 200, 'the code logs in once');
    assertError(await api.call(person.token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: hash, code: replayed }), 401, 'ERR_SECOND_FACTOR_INVALID');
    assert.equal((await show(id)).body.approvals.length, 0);
  });

  it('an unused recovery code is a second factor too (once)', async () => {
    const [p] = freshest(1);
    const person = p as Person;
    const code = person.recoveryCodes.pop() as string;
    codesSent.add(code);
    const res = await api.call(person.token, 'POST', `/v1/sys/approvals/${id}/approve`, { params_sha256: hash, code });
    assertOk(res);
    assert.equal(res.body.approvals.length, 1);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/cancel`);
  });
});

describe('parameters are the approved ones', () => {
  let id: string;
  let hash: string;
  let otherHash: string;

  before(async () => {
    ({ id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay-cfg/config', { disabled: true })));
    const other = pending(await api.call(rita.token, 'POST', '/v1/keys/pay-cfg/config', { disabled: false }));
    otherHash = other.params_sha256;
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${other.id}/cancel`);
  });

  it('the body is part of the hash, and shown as it will run', async () => {
    assert.notEqual(hash, otherHash);
    assert.deepEqual((await show(id)).body.body, { disabled: true });
  });

  it('an approver who saw other parameters (another hash) is refused', async () => {
    const [p] = freshest(1);
    assertError(await approveAs(p as Person, id, otherHash, (p as Person).token, true), 409, 'ERR_APPROVAL_PARAMS_MISMATCH');
    assert.equal((await show(id)).body.approvals.length, 0);
  });

  it('executing cannot alter the body: a body on execute is refused, and nothing runs', async () => {
    await approveBy(2, id, hash);
    assert.equal((await show(id)).body.state, 'approved');
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/execute`, { disabled: false }), 400, 'ERR_BAD_REQUEST');
    assert.equal((await show(id)).body.state, 'approved');
    assert.equal((await api.asRoot('GET', '/v1/keys/pay-cfg')).disabled, false);
  });

  it('a forged execution marker on the protected route is refused', async () => {
    const res = await api.call(rita.token, 'POST', '/v1/keys/pay-cfg/config', { disabled: false });
    assert.equal(res.status, 202, 'without a marker it is just another request');
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${res.body.approval.id}/cancel`);
    for (const marker of ['x', 'A'.repeat(43), id]) {
      const forged = await request(server.address, { method: 'POST', path: '/v1/keys/pay-cfg/config', token: rita.token, json: { disabled: true }, headers: { 'x-keyhold-approval-execution': marker } });
      assertError(forged, 403, 'ERR_APPROVAL_EXECUTION_INVALID', marker);
    }
    assert.equal((await api.asRoot('GET', '/v1/keys/pay-cfg')).disabled, false);
    assert.equal((await show(id)).body.state, 'approved');
  });

  it('execution runs exactly the approved body', async () => {
    const res = await execute(id);
    assertOk(res);
    assert.equal(res.body.disabled, true);
    assert.equal((await api.asRoot('GET', '/v1/keys/pay-cfg')).disabled, true);
  });
});

describe('deny and cancel', () => {
  it('one member\'s denial ends the request: no approval or execution after it', async () => {
    const { id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assertError(await api.call(mallory.token, 'POST', `/v1/sys/approvals/${id}/deny`, { code: await nextCode(mallory, false) }), 403, 'ERR_APPROVAL_NOT_APPROVER');
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/deny`, { code: await nextCode(rita, false) }), 403, 'ERR_APPROVAL_SELF');
    const [p, q] = freshest(2);
    const denier = p as Person;
    assertError(await api.call(denier.token, 'POST', `/v1/sys/approvals/${id}/deny`, { code: await wrongCode(denier) }), 401, 'ERR_SECOND_FACTOR_INVALID');
    const denied = await api.call(denier.token, 'POST', `/v1/sys/approvals/${id}/deny`, { code: await nextCode(denier), reason: 'not in the change window' });
    codesSent.add(denier.lastCode);
    assertOk(denied);
    assert.equal(denied.body.state, 'denied');
    assert.equal(denied.body.denials[0].reason, 'not in the change window');
    assertError(await approveAs(q as Person, id, hash, (q as Person).token, true), 409, 'ERR_APPROVAL_STATE');
    assertError(await execute(id), 409, 'ERR_APPROVAL_STATE');
  });

  it('only the requester cancels; after it nothing happens', async () => {
    const version = await keyVersion('pay');
    const { id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    await approveBy(1, id, hash);
    assertError(await api.call(alice.token, 'POST', `/v1/sys/approvals/${id}/cancel`), 403, 'ERR_APPROVAL_NOT_REQUESTER');
    assertError(await api.call(server.rootToken, 'POST', `/v1/sys/approvals/${id}/cancel`), 403, 'ERR_APPROVAL_NOT_PERSON');
    const cancelled = await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/cancel`);
    assertOk(cancelled);
    assert.equal(cancelled.body.state, 'cancelled');
    const late = freshest(1)[0] as Person;
    assertError(await approveAs(late, id, hash, late.token, true), 409, 'ERR_APPROVAL_STATE');
    assertError(await execute(id), 409, 'ERR_APPROVAL_STATE');
    assertError(await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/cancel`), 409, 'ERR_APPROVAL_STATE');
    assert.equal(await keyVersion('pay'), version);
  });
});

describe('concurrent executions', () => {
  it('run the action once: one 200, the others 409, the version moves by one', async () => {
    const version = await keyVersion('pay');
    const { id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    await approveBy(2, id, hash);
    const tokens = [rita.token, rita.token, rita.token, await loginAgain(api, rita), rita.token, rita.token];
    const answers = await Promise.all(tokens.map((t) => execute(id, t)));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409, 409, 409], answers.map((a) => a.text.slice(0, 120)).join('\n'));
    for (const a of answers.filter((x) => x.status === 409)) assert.equal(a.body.error.code, 'ERR_APPROVAL_STATE');
    assert.equal(await keyVersion('pay'), version + 1);
  });
});

describe('who can request', () => {
  it('not the root token, nor a token made from it: a clear 403, and nothing happens', async () => {
    const version = await keyVersion('pay');
    const res = await api.call(server.rootToken, 'POST', '/v1/keys/pay/rotate');
    assertError(res, 403, 'ERR_APPROVAL_NOT_PERSON');
    assert.match(res.body.error.message, /person/);
    const child = await api.asRoot('POST', '/v1/tokens', { policies: ['keys-admin'] });
    assertError(await api.call(child.token, 'POST', '/v1/keys/pay/rotate'), 403, 'ERR_APPROVAL_NOT_PERSON');
    assert.equal(await keyVersion('pay'), version);
  });

  it('a person\'s child token requests as that person', async () => {
    const child = await api.call(rita.token, 'POST', '/v1/tokens', { policies: ['keys-admin'] });
    const approval = pending(await api.call(child.body.token, 'POST', '/v1/keys/pay/rotate'));
    const view = await show(approval.id);
    assert.equal(view.body.requester, 'operator:rita');
    assertOk(await api.call(rita.token, 'POST', `/v1/sys/approvals/${approval.id}/cancel`), 200, 'the same person cancels it');
  });

  it('a person still needs the capability: approval comes on top of the policy check, never instead', async () => {
    assertError(await api.call(reader.token, 'POST', '/v1/keys/pay/rotate'), 403, 'ERR_PERMISSION_DENIED');
  });
});

describe('reading requests', () => {
  it('the requester reads their own without a capability; others need read, and list needs list', async () => {
    const { id } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assertOk(await show(id, rita.token), 200, 'own request');
    assertError(await show(id, reader.token), 403, 'ERR_PERMISSION_DENIED');
    assertError(await api.call(rita.token, 'GET', '/v1/sys/approvals'), 403, 'ERR_PERMISSION_DENIED');
    const list = await api.call(mallory.token, 'GET', '/v1/sys/approvals?state=pending');
    assertOk(list);
    assert.ok(list.body.approvals.some((a: { id: string }) => a.id === id));
    assert.ok(list.body.approvals.every((a: { state: string; body?: unknown }) => a.state === 'pending' && a.body === undefined));
    const executed = await api.call(mallory.token, 'GET', '/v1/sys/approvals?state=executed');
    assert.ok(executed.body.approvals.length >= 3);
    assertError(await show('apr_AAAAAAAAAAAAAAAAAAAAAA', mallory.token), 404, 'ERR_APPROVAL_NOT_FOUND');
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${id}/cancel`);
  });
});

describe('the CLI', () => {
  const cli = (args: string[], token: string, input?: string, env: Record<string, string> = {}) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { env: { ...process.env, KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: token, KEYHOLD_TOTP_CODE: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });

  it('shows a request with its hash checked, and approves with the code read from stdin', async () => {
    const { id, params_sha256: hash } = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    const shown = await cli(['approval', 'show', id], alice.token);
    assert.equal(shown.code, 0, shown.stderr);
    const view = JSON.parse(shown.stdout);
    assert.equal(view.params_sha256_verified, true);
    const [p] = freshest(1);
    const person = p as Person;
    const wrongHash = await cli(['approval', 'approve', id, '--params-sha256', 'f'.repeat(64)], person.token, await nextCode(person, false));
    assert.notEqual(wrongHash.code, 0);
    assert.match(wrongHash.stderr, /ERR_APPROVAL_PARAMS_MISMATCH/);
    const code = await nextCode(person);
    codesSent.add(code);
    const approved = await cli(['approval', 'approve', id, '--params-sha256', hash], person.token, `${code}\n`);
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(JSON.parse(approved.stdout).approvals.length, 1);
    assert.ok(!approved.stderr.includes(code), 'the code is not echoed back');
    const cancelled = await cli(['approval', 'cancel', id], rita.token);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(JSON.parse(cancelled.stdout).state, 'cancelled');
  });
});

describe('approval policies protect themselves', () => {
  let keepsOldRule: Pending;

  it('root cannot change or delete a policy: only persons can request, and the policy protects itself', async () => {
    assertError(await api.call(server.rootToken, 'PUT', '/v1/sys/approvals/policies/key-quorum', { operations: ['key-lifecycle'], paths: ['keys/pay*'], group: 'custodians', required: 3 }), 403, 'ERR_APPROVAL_NOT_PERSON');
    assertError(await api.call(server.rootToken, 'DELETE', '/v1/sys/approvals/policies/key-quorum'), 403, 'ERR_APPROVAL_NOT_PERSON');
    assert.equal((await api.asRoot('GET', '/v1/sys/approvals/policies/key-quorum')).required, 2);
  });

  it('changing it needs its own quorum; a request opened before keeps the rule it was created under', async () => {
    keepsOldRule = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    const change = pending(await api.call(rita.token, 'PUT', '/v1/sys/approvals/policies/key-quorum', { operations: ['key-lifecycle'], paths: ['keys/pay*'], group: 'custodians', required: 3 }));
    assert.equal(change.operation, 'approvals.policies.write');
    assert.equal(change.path, 'sys/approvals/policies/key-quorum');
    assert.equal(change.required, 2);
    assert.equal((await api.asRoot('GET', '/v1/sys/approvals/policies/key-quorum')).required, 2, 'not changed yet');
    await approveBy(2, change.id, change.params_sha256);
    const done = await execute(change.id);
    assertOk(done);
    assert.equal(done.body.required, 3);
    assert.equal((await api.asRoot('GET', '/v1/sys/approvals/policies/key-quorum')).required, 3);
    // Opened under "2 of the group": two approvals still approve it.
    const approved = await approveBy(2, keepsOldRule.id, keepsOldRule.params_sha256);
    assert.equal(approved.state, 'approved');
    assert.deepEqual(approved.rules, [{ policy: 'key-quorum', group: 'custodians', required: 2, approvals: 2 }]);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${keepsOldRule.id}/cancel`);
    // A new request needs the new rule.
    const fresh = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'));
    assert.equal(fresh.required, 3);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${fresh.id}/cancel`);
  });

  it('a policy covering approval-policy changes guards creating new ones, and joins every policy\'s own', async () => {
    // Nothing covers creating "meta" (key-quorum guards only itself): it is created at once.
    const meta = await api.call(rita.token, 'PUT', '/v1/sys/approvals/policies/meta', { operations: ['approval-policy-changes'], paths: ['sys/approvals/policies/*'], group: 'custodians', required: 2 });
    assertOk(meta, 200);
    const other = pending(await api.call(rita.token, 'PUT', '/v1/sys/approvals/policies/other', { operations: ['policy-changes'], paths: ['sys/policies/*'], group: 'custodians', required: 2 }));
    assert.deepEqual(other.rules.map((r: { policy: string }) => r.policy), ['meta']);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${other.id}/cancel`);
    assertError(await api.call(rita.token, 'GET', '/v1/sys/approvals/policies/other'), 404, 'ERR_APPROVAL_POLICY_NOT_FOUND');
    const change = pending(await api.call(rita.token, 'PUT', '/v1/sys/approvals/policies/key-quorum', { operations: ['key-lifecycle'], paths: ['keys/pay*'], group: 'custodians', required: 2 }));
    assert.deepEqual(change.rules.map((r: { policy: string }) => r.policy), ['key-quorum', 'meta']);
    await api.call(rita.token, 'POST', `/v1/sys/approvals/${change.id}/cancel`);
  });

  it('deleting it needs its own (new) quorum; afterwards the operation runs at once again', async () => {
    const removal = pending(await api.call(rita.token, 'DELETE', '/v1/sys/approvals/policies/key-quorum'));
    assert.equal(removal.required, 3);
    const two = await approveBy(2, removal.id, removal.params_sha256);
    assert.equal(two.state, 'pending', '2 of 3 is not enough any more');
    await approveBy(1, removal.id, removal.params_sha256, custodians.filter((c) => two.approvals.some((a: { person: string }) => a.person === `operator:${c.name}`)));
    const done = await execute(removal.id);
    assertOk(done, 204);
    assertError(await api.call(rita.token, 'GET', '/v1/sys/approvals/policies/key-quorum'), 404, 'ERR_APPROVAL_POLICY_NOT_FOUND');
    assertOk(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 200, 'unprotected again');
  });
});
