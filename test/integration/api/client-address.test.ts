/**
 * The client address behind a reverse proxy, against real `keyhold dev` servers: the flood limit
 * (small: MAX per long window), the per-address login lockout (3 failures) and the audit record.
 * Without `api.trustedProxies` X-Forwarded-For is ignored; with 127.0.0.1/32 and 127.0.0.2
 * trusted, a test speaking from those is "a proxy" and the header names the client, while
 * 127.0.0.N (N > 2) are untrusted peers. IPv6 clients reach the limits through the trusted header (the servers
 * listen on 127.0.0.1). Each case uses clients of its own, so each has its own budget.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { auditRecords, startDev, tempDir, type AuditLine, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from '../server/support.js';
import { assertError, assertOk, request, type RawRequest, type RawResponse } from './api-helpers.js';

const MAX = 5;
const WINDOW_S = 120;
/** Failed logins from one client before its address is locked. */
const LOCK_AFTER = 3;

const LIMITS = { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: `${MAX}/${WINDOW_S}`, KEYHOLD_OPERATORS_ADDRESS_LOCKOUT: `${LOCK_AFTER}/60/60`, KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT: '1000/1/1' };

type Record_ = AuditLine & { fields?: Record<string, string> };

/** A test's view of one server: requests from a local address, with or without X-Forwarded-For. */
function speaker(server: () => DevServer) {
  const agents: http.Agent[] = [];
  const from = (local: string) => {
    const agent = new http.Agent({ keepAlive: true, localAddress: local, maxSockets: 8 });
    agents.push(agent);
    return (req: RawRequest, xff?: string): Promise<RawResponse> =>
      request(server().address, { ...req, agent, headers: { ...req.headers, ...(xff === undefined ? {} : { 'x-forwarded-for': xff }) } });
  };
  const records = (): Record_[] => auditRecords(server().dataDir);
  const recordOf = (res: RawResponse): Record_ => {
    const id = String(res.headers['x-request-id']);
    const mine = records().filter((r) => r.requestId === id && r.type === 'response');
    assert.equal(mine.length, 1, `response records of ${id}`);
    return mine[0] as Record_;
  };
  const summaries = (address: string) => records().filter((r) => r.operation === 'rate-limit' && r.fields?.address === address && r.fields?.event === 'started');
  return { from, records, recordOf, summaries, close: () => agents.forEach((a) => a.destroy()) };
}

const unauthenticated: RawRequest = { method: 'GET', path: '/v1/keys' };
const wrongLogin = (username: string): RawRequest => ({ method: 'POST', path: '/v1/auth/operator/login', json: { username, password: 'not the right password', totp: '123456' } });

describe('client address without trusted proxies: X-Forwarded-For is ignored', { timeout: 180_000 }, () => {
  let server: DevServer;
  const s = speaker(() => server);
  before(async () => {
    server = await startDev(tempDir('keyhold-client-'), LIMITS);
  });
  after(async () => {
    s.close();
    await server.stop();
  });

  it('a client rotating spoofed X-Forwarded-For values is limited by its socket address, and audited under it', async () => {
    const send = s.from('127.0.0.20');
    const answered: RawResponse[] = [];
    for (let n = 0; n < MAX; n++) answered.push(await send(unauthenticated, `203.0.113.${n + 1}`));
    for (const res of answered) assertError(res, 401, 'ERR_UNAUTHENTICATED');
    assertError(await send(unauthenticated, '203.0.113.99'), 429, 'ERR_RATE_LIMITED', 'a fresh spoofed address is no fresh budget');
    assertError(await send(unauthenticated, '2001:db8:9::1'), 429, 'ERR_RATE_LIMITED');
    for (const res of answered) {
      const fields = s.recordOf(res).fields ?? {};
      assert.equal(fields.client_address, '127.0.0.20');
      assert.equal(fields.peer_address, undefined, 'no peer address when the client is the peer');
    }
    assert.equal(s.summaries('127.0.0.20').length, 1, 'the rate-limit summary names the socket address');
    assert.equal(s.records().filter((r) => r.fields?.address?.startsWith('203.0.113.')).length, 0);
  });

  it('the login lockout counts the socket address too, whatever the header says', async () => {
    const send = s.from('127.0.0.21');
    for (let n = 0; n < LOCK_AFTER; n++) assertError(await send(wrongLogin(`spoof${n}`), `198.51.100.${n + 1}`), 401, 'ERR_LOGIN_FAILED');
    const locked = await send(wrongLogin('spoof9'), '198.51.100.200');
    assertError(locked, 429, 'ERR_ADDRESS_LOCKED');
    assert.equal(s.recordOf(locked).fields?.client_address, '127.0.0.21');
    // Another peer is another client.
    assertError(await s.from('127.0.0.22')(wrongLogin('spoof9'), '198.51.100.200'), 401, 'ERR_LOGIN_FAILED');
  });

  it('records the client address on authenticated requests, both records of a write', async () => {
    const res = await s.from('127.0.0.23')({ method: 'PUT', path: '/v1/secrets/client/a', token: server.rootToken, json: { data: { v: 1 } } }, '203.0.113.50');
    assertOk(res);
    const id = String(res.headers['x-request-id']);
    const mine = s.records().filter((r) => r.requestId === id);
    assert.deepEqual(mine.map((r) => r.type), ['request', 'response']);
    for (const r of mine) assert.deepEqual([r.fields?.client_address, r.fields?.peer_address], ['127.0.0.23', undefined]);
  });
});

describe('client address behind trusted proxies (api.trustedProxies: [127.0.0.1/32, 127.0.0.2])', { timeout: 240_000 }, () => {
  let server: DevServer;
  const s = speaker(() => server);
  const proxy = s.from('127.0.0.1');
  before(async () => {
    server = await startDev(tempDir('keyhold-client-proxy-'), { ...LIMITS, KEYHOLD_TRUSTED_PROXIES: '127.0.0.1/32,127.0.0.2' });
  });
  after(async () => {
    s.close();
    await server.stop();
  });

  it('limits distinct forwarded clients separately, and audits the client with the proxy it came through', async () => {
    const first: RawResponse[] = [];
    for (let n = 0; n < MAX; n++) first.push(await proxy(unauthenticated, '203.0.113.1'));
    for (const res of first) assertError(res, 401, 'ERR_UNAUTHENTICATED');
    assertError(await proxy(unauthenticated, '203.0.113.1'), 429, 'ERR_RATE_LIMITED');
    // Another client behind the same proxy has its own budget, and so does the proxy itself.
    const other = await proxy(unauthenticated, '203.0.113.2');
    assertError(other, 401, 'ERR_UNAUTHENTICATED', 'one client\'s flood does not limit the others behind the proxy');
    assertError(await proxy(unauthenticated), 401, 'ERR_UNAUTHENTICATED');
    for (const res of first) assert.deepEqual([s.recordOf(res).fields?.client_address, s.recordOf(res).fields?.peer_address], ['203.0.113.1', '127.0.0.1']);
    assert.deepEqual([s.recordOf(other).fields?.client_address, s.recordOf(other).fields?.peer_address], ['203.0.113.2', '127.0.0.1']);
    assert.equal(s.summaries('203.0.113.1').length, 1, 'the rate-limit summary names the forwarded client');
    assert.equal(s.summaries('127.0.0.1').length, 0, 'the proxy was not limited');
  });

  it('takes the rightmost untrusted entry: a client cannot pick its address by prepending to the header', async () => {
    const answered: RawResponse[] = [];
    // The real client (appended by the proxy) is 203.0.113.3; it writes whatever it likes before.
    for (let n = 0; n < MAX; n++) answered.push(await proxy(unauthenticated, `198.51.100.${n + 1}, 203.0.113.3`));
    for (const res of answered) assertError(res, 401, 'ERR_UNAUTHENTICATED');
    assertError(await proxy(unauthenticated, '198.51.100.77, 203.0.113.3'), 429, 'ERR_RATE_LIMITED');
    // Prepending a trusted address (the proxy's own) or several entries changes nothing either.
    assertError(await proxy(unauthenticated, '127.0.0.1, 203.0.113.3'), 429, 'ERR_RATE_LIMITED');
    assertError(await proxy(unauthenticated, '10.0.0.1, 127.0.0.1, ::1, 203.0.113.3'), 429, 'ERR_RATE_LIMITED');
    for (const res of answered) assert.equal(s.recordOf(res).fields?.client_address, '203.0.113.3');
    assert.equal(s.records().filter((r) => r.fields?.client_address?.startsWith('198.51.100.')).length, 0, 'a prepended address never reaches the audit');
  });

  it('ignores the header from a peer that is not a trusted proxy', async () => {
    const direct = s.from('127.0.0.30');
    const answered: RawResponse[] = [];
    for (let n = 0; n < MAX; n++) answered.push(await direct(unauthenticated, `203.0.113.${100 + n}`));
    for (const res of answered) assertError(res, 401, 'ERR_UNAUTHENTICATED');
    assertError(await direct(unauthenticated, '203.0.113.199'), 429, 'ERR_RATE_LIMITED');
    for (const res of answered) assert.deepEqual([s.recordOf(res).fields?.client_address, s.recordOf(res).fields?.peer_address], ['127.0.0.30', undefined]);
    // An attacker naming a victim's address cannot spend the victim's budget.
    assertError(await proxy(unauthenticated, '203.0.113.100'), 401, 'ERR_UNAUTHENTICATED');
  });

  it('counts an IPv6 client by its /64: other addresses of the /64 share the budget, another /64 has its own', async () => {
    const answered: RawResponse[] = [];
    for (let n = 0; n < MAX; n++) answered.push(await proxy(unauthenticated, `2001:db8:1:2::${(n + 1).toString(16)}`));
    for (const res of answered) assertError(res, 401, 'ERR_UNAUTHENTICATED');
    for (const same of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:abcd::9', '2001:db8:1:2::']) {
      assertError(await proxy(unauthenticated, same), 429, 'ERR_RATE_LIMITED', same);
    }
    assertError(await proxy(unauthenticated, '2001:db8:1:3::1'), 401, 'ERR_UNAUTHENTICATED', 'the next /64');
    assertError(await proxy(unauthenticated, '2001:db8:2:2::1'), 401, 'ERR_UNAUTHENTICATED', 'another /48');
    // The audit keeps each full address; the summary names the /64.
    assert.deepEqual(answered.map((res) => s.recordOf(res).fields?.client_address), ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2::3', '2001:db8:1:2::4', '2001:db8:1:2::5']);
    assert.equal(s.summaries('2001:db8:1:2::/64').length, 1);
  });

  it('counts an IPv4-mapped IPv6 client as its IPv4 address', async () => {
    for (let n = 0; n < MAX; n++) {
      const res = await proxy(unauthenticated, n % 2 === 0 ? '::ffff:203.0.113.7' : '203.0.113.7');
      assertError(res, 401, 'ERR_UNAUTHENTICATED');
      assert.equal(s.recordOf(res).fields?.client_address, '203.0.113.7');
    }
    assertError(await proxy(unauthenticated, '203.0.113.7'), 429, 'ERR_RATE_LIMITED');
    assertError(await proxy(unauthenticated, '::FFFF:203.0.113.7'), 429, 'ERR_RATE_LIMITED');
    assertError(await proxy(unauthenticated, '::ffff:cb00:7107'), 429, 'ERR_RATE_LIMITED', 'the hex spelling of 203.0.113.7');
    assertError(await proxy(unauthenticated, '203.0.113.8'), 401, 'ERR_UNAUTHENTICATED');
  });

  it('locks out one client behind the proxy, not everyone (per /64 for IPv6)', async () => {
    for (let n = 0; n < LOCK_AFTER; n++) assertError(await proxy(wrongLogin(`x${n}`), '198.51.100.40'), 401, 'ERR_LOGIN_FAILED');
    const locked = await proxy(wrongLogin('x9'), '198.51.100.40');
    assertError(locked, 429, 'ERR_ADDRESS_LOCKED');
    assert.deepEqual([s.recordOf(locked).fields?.client_address, s.recordOf(locked).fields?.peer_address], ['198.51.100.40', '127.0.0.1']);
    assertError(await proxy(wrongLogin('x9'), '198.51.100.41'), 401, 'ERR_LOGIN_FAILED', 'another client behind the proxy is not locked');
    assertError(await proxy(wrongLogin('x9')), 401, 'ERR_LOGIN_FAILED', 'nor is the proxy itself');
    for (let n = 0; n < LOCK_AFTER; n++) assertError(await proxy(wrongLogin(`y${n}`), `2001:db8:5:6::${n + 1}`), 401, 'ERR_LOGIN_FAILED');
    assertError(await proxy(wrongLogin('y9'), '2001:db8:5:6:aaaa::1'), 429, 'ERR_ADDRESS_LOCKED', 'another address of the locked /64');
    assertError(await proxy(wrongLogin('y9'), '2001:db8:5:7::1'), 401, 'ERR_LOGIN_FAILED', 'another /64');
  });

  it('never answers 5xx to a malformed X-Forwarded-For; junk counts as the proxy that passed it on, never as a fresh client', async () => {
    // Through the second proxy, whose own budget nothing else spends.
    const second = s.from('127.0.0.2');
    const junk = [
      'garbage', 'unknown', '_obfuscated', '', ' ', ',', ', ,', '999.999.999.999', '203.0.113.9:99999', '[2001:db8::1', '0177.0.0.1',
      '0x7f.0.0.1', '1.2.3.4/8', '"><script>alert(1)</script>', '\u00e9t\u00e9', '%00', ';drop table', '-', '2001:db8::1%eth0/64',
      'a'.repeat(8 * 1024), `${'203.0.113.1, '.repeat(600)}junk`,
    ];
    const statuses: number[] = [];
    for (const xff of junk) {
      const what = JSON.stringify(xff.slice(0, 30));
      assertOk(await second({ method: 'GET', path: '/v1/sys/health' }, xff), 200, `health with ${what}`);
      const authed = await second({ method: 'GET', path: '/v1/secrets/client/none', token: server.rootToken }, xff);
      assertError(authed, 404, 'ERR_SECRET_NOT_FOUND', what);
      const fields = s.recordOf(authed).fields ?? {};
      assert.deepEqual([fields.client_address, fields.peer_address], ['127.0.0.2', undefined], what);
      statuses.push((await second(unauthenticated, xff)).status);
    }
    // One budget, the proxy's: MAX answered, then 429, however many junk values there are.
    assert.deepEqual(statuses, junk.map((_, i) => (i < MAX ? 401 : 429)));
    // A header past Node's 16 KiB limit is refused before keyhold reads it: 431, not 5xx.
    assertError(await request(server.address, { ...unauthenticated, headers: { 'x-forwarded-for': 'b'.repeat(20 * 1024) } }), 431, 'ERR_HEADERS_TOO_LARGE');
    // From a peer nobody trusts the header is not even read.
    const direct = s.from('127.0.0.31');
    for (const xff of junk.slice(0, MAX)) assertError(await direct(unauthenticated, xff), 401, 'ERR_UNAUTHENTICATED');
  });
});

describe('api.trustedProxies at start', { timeout: 120_000 }, () => {
  /** A refused start: non-zero exit, `keyhold: ERR_CONFIG: …` on stderr, no stack trace. */
  const assertRefused = (r: Awaited<ReturnType<typeof runCliTimed>>, message: RegExp) => {
    const out = r.stdout + r.stderr;
    assert.equal(r.signal, null, `still running (killed):\n${out}`);
    assert.notEqual(r.code, 0, `exited 0:\n${out}`);
    const line = /^keyhold: ERR_CONFIG: (.+)$/m.exec(r.stderr);
    assert.ok(line, `stderr lacks "keyhold: ERR_CONFIG: …":\n${r.stderr}`);
    assert.match(line[1] as string, message);
    assert.doesNotMatch(out, /^\s+at\s|node:internal|\.js:\d+:\d+/m, `stack trace in output:\n${out}`);
  };

  for (const [value, message] of [
    ['0.0.0.0/0', /api\.trustedProxies\[0\] "0\.0\.0\.0\/0" trusts every address/],
    ['127.0.0.1/32,::/0', /api\.trustedProxies\[1\] "::\/0" trusts every address/],
    ['true', /"true" is not an IP address or CIDR/],
    ['loopback', /"loopback" is not an IP address or CIDR/],
    ['10.0.0.0/40', /invalid prefix length/],
    ['10.1.2.3/8', /write 10\.0\.0\.0\/8/],
    ['10.0.0.0/8,,127.0.0.1', /\/api\/trustedProxies\/1/],
  ] as const) {
    it(`keyhold dev refuses KEYHOLD_TRUSTED_PROXIES=${value} with a clear ERR_CONFIG`, async () => {
      assertRefused(await runCliTimed(['dev', '--data-dir', tempDir('keyhold-client-bad-'), '--listen', '127.0.0.1:0'], { KEYHOLD_TRUSTED_PROXIES: value }), message);
    });
  }
});
