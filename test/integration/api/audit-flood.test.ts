/**
 * "Anyone can fill the audit disk" (issue 9): what an attacker without credentials can make the
 * audit log hold. A real `keyhold dev` with a small flood limit (20 per 4 s); every case speaks
 * from its own loopback address (127.0.0.N), so each has its own budget, as distinct clients would.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../../helpers/processes.js';
import { inParallel } from '../../helpers/pool.js';
import { auditRecords, startDev, tempDir, type AuditLine, type DevServer } from '../../helpers/server.js';
import { assertError, assertOk, request, type RawRequest, type RawResponse } from './api-helpers.js';

const MAX = 20;
const WINDOW_S = 4;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('audit flood: requests without valid credentials', { timeout: 240_000 }, () => {
  let server: DevServer;
  const agents: http.Agent[] = [];

  /** Sends from loopback address `from`, over kept-alive connections. */
  const client = (from: string) => {
    const agent = new http.Agent({ keepAlive: true, localAddress: from, maxSockets: 64 });
    agents.push(agent);
    return (req: RawRequest) => request(server.address, { ...req, agent });
  };
  const idOf = (res: RawResponse) => String(res.headers['x-request-id']);
  const records = (): Array<AuditLine & { fields?: Record<string, string> }> => auditRecords(server.dataDir);
  const auditBytes = () => statSync(join(server.dataDir, 'audit.log')).size;

  before(async () => {
    server = await startDev(tempDir('keyhold-flood-'), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: `${MAX}/${WINDOW_S}` });
    assertOk(await request(server.address, { method: 'PUT', path: '/v1/secrets/flood/x', token: server.rootToken, json: { data: { v: 1 } } }));
  });

  after(async () => {
    for (const agent of agents) agent.destroy();
    await server.stop();
  });

  const attacks: Array<{ name: string; req: RawRequest; status: number; code: string }> = [
    { name: 'no token', req: { method: 'GET', path: '/v1/secrets/flood/x' }, status: 401, code: 'ERR_UNAUTHENTICATED' },
    { name: 'an invalid bearer token', req: { method: 'GET', path: '/v1/secrets/flood/x', token: `kh_${randomBytes(24).toString('hex')}` }, status: 401, code: 'ERR_UNAUTHENTICATED' },
    { name: 'a malformed Authorization header', req: { method: 'GET', path: '/v1/keys', headers: { authorization: 'Basic Zm9vOmJhcg==' } }, status: 401, code: 'ERR_UNAUTHENTICATED' },
    { name: 'a write without a token', req: { method: 'PUT', path: '/v1/secrets/flood/y', json: { data: { v: 2 } } }, status: 401, code: 'ERR_UNAUTHENTICATED' },
    { name: 'an unmatched route without a token', req: { method: 'GET', path: `/v1/nothing-here/${'z'.repeat(300)}` }, status: 401, code: 'ERR_UNAUTHENTICATED' },
    // Kubernetes login is not configured on this server: every login fails (no cluster needed).
    { name: 'a failed Kubernetes login', req: { method: 'POST', path: '/v1/auth/kubernetes/login', json: { role: 'app', jwt: 'a.b.c' } }, status: 404, code: 'ERR_NOT_FOUND' },
    { name: 'a login with an invalid body', req: { method: 'POST', path: '/v1/auth/kubernetes/login', json: { role: 'app' } }, status: 400, code: 'ERR_BAD_REQUEST' },
  ];

  attacks.forEach((attack, i) => {
    it(`limits ${attack.name}: ${MAX} answered, then 429 ERR_RATE_LIMITED with no record of its own`, async () => {
      const send = client(`127.0.0.${10 + i}`);
      const answered: RawResponse[] = [];
      for (let n = 0; n < MAX; n++) answered.push(await send(attack.req));
      for (const res of answered) assertError(res, attack.status, attack.code, attack.name);
      const refused: RawResponse[] = [];
      for (let n = 0; n < 5; n++) refused.push(await send(attack.req));
      for (const res of refused) {
        assertError(res, 429, 'ERR_RATE_LIMITED', attack.name);
        const retry = Number(res.headers['retry-after']);
        assert.ok(retry >= 1 && retry <= WINDOW_S, `retry-after ${res.headers['retry-after']}`);
      }
      const ids = new Set(records().map((r) => r.requestId));
      for (const res of answered) assert.ok(ids.has(idOf(res)), `${attack.name}: an answered request has no record`);
      for (const res of refused) assert.ok(!ids.has(idOf(res)) || records().some((r) => r.operation === 'rate-limit' && r.requestId === idOf(res)), `${attack.name}: a limited request has a record of its own`);
    });
  });

  it('records at most 128 characters of the path of a 15 KiB unauthenticated URL, plus the sha256 of the whole', async () => {
    const send = client('127.0.0.40');
    const long = 'a'.repeat(15 * 1024);
    const cases: RawRequest[] = [
      { method: 'GET', path: `/v1/secrets/${long}` },
      { method: 'GET', path: `/v1/secrets/x?version=1&pad=${long}` },
      { method: 'GET', path: `/v1/secrets/${long}`, token: `kh_${randomBytes(24).toString('hex')}` },
      { method: 'DELETE', path: `/${long}` },
      { method: 'POST', path: `/v1/auth/kubernetes/login?${long}`, json: { role: 'app', jwt: 'a.b.c' } },
    ];
    for (const c of cases) {
      const res = await send(c);
      assert.ok(res.status === 401 || res.status === 404, `${c.method} ${c.path.slice(0, 40)}…: ${res.status}`);
      const mine = records().filter((r) => r.requestId === idOf(res));
      assert.ok(mine.length >= 1, 'no record');
      for (const r of mine) {
        assert.ok(r.path.length <= 128, `recorded path of ${r.path.length} characters`);
        assert.ok(c.path.startsWith(r.path), 'the recorded path is a prefix of the sent one');
        assert.equal(r.fields?.path_sha256, sha256(c.path));
        assert.ok(JSON.stringify(r).length < 1024, `a record of ${JSON.stringify(r).length} bytes`);
      }
    }
    // An authenticated request keeps its full path (Node bounds the request line to 16 KiB).
    const path = `/v1/nothing-here/${'b'.repeat(4000)}`;
    const res = await send({ method: 'GET', path, token: server.rootToken });
    assert.equal(res.status, 404);
    const mine = records().find((r) => r.requestId === idOf(res));
    assert.equal(mine?.path, path);
    assert.equal(mine?.fields?.path_sha256, undefined);
  });

  it('records the path keyhold served for an absolute-form request target (http://host/path), not the text before it', async () => {
    // RFC 9112 lets a client send `GET http://host/path`; the router serves /path, so the log must name /path.
    const send = client('127.0.0.45');
    const token = server.rootToken;
    const write = await send({ method: 'PUT', path: 'http://decoy.example/v1/secrets/flood/abs', token, json: { data: { v: 3 } } });
    assertOk(write);
    const read = await send({ method: 'GET', path: 'HTTP://decoy.example:8200/v1/secrets/flood/abs?version=1', token });
    assertOk(read);
    assert.deepEqual(read.body.data, { v: 3 });
    const anonymousTarget = 'http://decoy.example/v1/secrets/flood/abs';
    const anonymous = await send({ method: 'GET', path: anonymousTarget });
    assertError(anonymous, 401, 'ERR_UNAUTHENTICATED');
    for (const [res, count] of [[write, 2], [read, 1], [anonymous, 1]] as const) {
      const mine = records().filter((r) => r.requestId === idOf(res));
      assert.equal(mine.length, count, `records of ${idOf(res)}`);
      for (const r of mine) assert.equal(r.path, '/v1/secrets/flood/abs');
    }
    assert.equal(records().find((r) => r.requestId === idOf(anonymous))?.fields?.path_sha256, sha256(anonymousTarget), 'the hash covers the whole target as sent');
  });

  it('1,000 unauthenticated requests from one address: 429 after the limit, bounded log growth, the limiting summarised with its count', async () => {
    const send = client('127.0.0.41');
    const bytesBefore = auditBytes();
    const started = Date.now();
    const results = await inParallel(Array.from({ length: 1000 }, (_, i) => i), 25, (i) => send({ method: 'GET', path: `/v1/secrets/${'q'.repeat(2000)}/${i}` }));
    const windows = Math.ceil((Date.now() - started) / (WINDOW_S * 1000)) + 1;
    const answered = results.filter((r) => r.status === 401);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(answered.length + limited.length, 1000, `other statuses: ${results.filter((r) => r.status !== 401 && r.status !== 429).map((r) => r.status).join(',')}`);
    assert.ok(answered.length <= MAX * windows, `${answered.length} answered 401 in at most ${windows} windows`);
    for (const r of limited) assertError(r, 429, 'ERR_RATE_LIMITED');
    // The closing summary is written when the window ends.
    await sleep(WINDOW_S * 1000 + 500);
    const growth = auditBytes() - bytesBefore;
    // Under 1 KiB per answered request (path capped at 128 characters), 2 summary records per window;
    // unlimited and uncapped, these 1,000 requests would write about 2.5 MB (1,000 records of the full 2 KB path).
    const bound = (answered.length + 2 * windows) * 1024;
    assert.ok(growth <= bound, `the audit log grew by ${growth} bytes for 1,000 requests (bound ${bound})`);
    console.log(`# 1,000 requests: ${answered.length} answered 401, ${limited.length} limited, audit log +${growth} bytes`);
    const all = records();
    const ids = new Set(all.map((r) => r.requestId));
    for (const r of limited) if (ids.has(idOf(r))) assert.equal(all.find((e) => e.requestId === idOf(r))?.operation, 'rate-limit');
    const summaries = all.filter((r) => r.operation === 'rate-limit' && r.fields?.address === '127.0.0.41');
    const started_ = summaries.filter((r) => r.fields?.event === 'started');
    const ended = summaries.filter((r) => r.fields?.event === 'ended');
    assert.ok(started_.length >= 1 && started_.length <= windows, `${started_.length} opening summaries`);
    assert.equal(ended.length, started_.length, 'every opening summary has its closing one');
    for (const s of started_) {
      const closing = ended.find((e) => e.requestId === s.requestId);
      assert.ok(closing, 'the closing summary carries the opening one\'s requestId');
      assert.equal(s.outcome?.status, 429);
      assert.equal(s.outcome?.code, 'ERR_RATE_LIMITED');
    }
    assert.equal(ended.reduce((sum, e) => sum + Number(e.fields?.limited), 0), limited.length, 'the summaries count every limited request');
  });

  it('does not limit an authenticated client on the same address while an attacker there is limited', async () => {
    const send = client('127.0.0.42');
    for (let n = 0; n < MAX + 3; n++) await send({ method: 'GET', path: '/v1/secrets/flood/x' });
    assertError(await send({ method: 'GET', path: '/v1/secrets/flood/x' }), 429, 'ERR_RATE_LIMITED');
    const statuses = await Promise.all(Array.from({ length: 60 }, async (_, n) => (n % 3 === 0
      ? send({ method: 'PUT', path: `/v1/secrets/flood/ok-${n}`, token: server.rootToken, json: { data: { n } } })
      : send({ method: 'GET', path: '/v1/secrets/flood/x', token: server.rootToken }))));
    assert.deepEqual([...new Set(statuses.map((r) => r.status))], [200]);
    // The attacker is still limited.
    assertError(await send({ method: 'GET', path: '/v1/secrets/flood/x', token: 'kh_nope' }), 429, 'ERR_RATE_LIMITED');
  });

  it('bounds concurrent failed logins from one address to the budget', async () => {
    const send = client('127.0.0.43');
    const results = await Promise.all(Array.from({ length: 2 * MAX }, () => send({ method: 'POST', path: '/v1/auth/kubernetes/login', json: { role: 'app', jwt: 'a.b.c' } })));
    const ran = results.filter((r) => r.status === 404).length;
    assert.ok(ran <= MAX, `${ran} logins ran`);
    assert.equal(results.filter((r) => r.status === 429).length, 2 * MAX - ran);
  });

  it('gives the budget back when the window closes, and records how many were limited', async () => {
    const send = client('127.0.0.44');
    for (let n = 0; n < MAX; n++) assertError(await send({ method: 'GET', path: '/v1/keys' }), 401, 'ERR_UNAUTHENTICATED');
    for (let n = 0; n < 3; n++) assertError(await send({ method: 'GET', path: '/v1/keys' }), 429, 'ERR_RATE_LIMITED');
    await sleep(WINDOW_S * 1000 + 500);
    assertError(await send({ method: 'GET', path: '/v1/keys' }), 401, 'ERR_UNAUTHENTICATED');
    const ended = records().filter((r) => r.operation === 'rate-limit' && r.fields?.address === '127.0.0.44' && r.fields?.event === 'ended');
    assert.equal(ended.length, 1);
    assert.equal(ended[0]?.fields?.limited, '3');
  });
});
