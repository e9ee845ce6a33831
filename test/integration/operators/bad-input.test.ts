/**
 * Malformed requests on every route of operator accounts, groups and capabilities, as a careless
 * operator or an attacker sends them: each is answered 4xx with an error code (never a 5xx), and
 * the server stays healthy. The class, not one example: each field missing, each field of the
 * wrong type or out of bounds, unknown fields, bodies that are not JSON objects, bad path names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { assertHealthy, ERROR_CODE, request, type RawRequest } from '../api/api-helpers.js';
import { PASSWORD } from './support.js';

let server: DevServer;

interface RouteCase {
  method: string;
  path: string;
  /** A body the route accepts (or at least validates), which the cases below break one way at a time. */
  body?: Record<string, unknown>;
  anonymous?: boolean;
}

const ROUTES: RouteCase[] = [
  { method: 'POST', path: '/v1/auth/operator/login', body: { username: 'alice', password: PASSWORD, totp: '123456' }, anonymous: true },
  { method: 'POST', path: '/v1/auth/operator/enrol', body: { username: 'alice', password: PASSWORD }, anonymous: true },
  { method: 'POST', path: '/v1/auth/operator/enrol/confirm', body: { username: 'alice', password: PASSWORD, code: '123456' }, anonymous: true },
  { method: 'POST', path: '/v1/auth/operator/password', body: { username: 'alice', password: PASSWORD, totp: '123456', new_password: 'another long password' }, anonymous: true },
  { method: 'POST', path: '/v1/sys/operators', body: { name: 'zed', password: PASSWORD } },
  { method: 'POST', path: '/v1/sys/operators/alice/reset', body: { password: PASSWORD } },
  { method: 'PUT', path: '/v1/sys/groups/g1', body: { policies: ['p'], members: ['alice'], external_groups: ['Team A'] } },
];

/** Values of the wrong type or out of bounds for any field of these bodies. */
const WRONG_VALUES: unknown[] = [null, 0, -1, 1.5, true, {}, [], [1], '', 'x'.repeat(70_000), { $gt: '' }, ['a', 'a'], '\u0000', 'UPPER', '../x', 'a'.repeat(300)];

function casesFor(r: RouteCase): Array<{ name: string; req: RawRequest }> {
  const out: Array<{ name: string; req: RawRequest }> = [];
  const base = { method: r.method, path: r.path };
  const body = r.body as Record<string, unknown>;
  for (const field of Object.keys(body)) {
    const { [field]: _dropped, ...rest } = body;
    out.push({ name: `without ${field}`, req: { ...base, json: rest } });
    for (const v of WRONG_VALUES) {
      // A value the schema takes for this field is not a malformed case (e.g. '' is not a valid name, but 'UPPER' may be a password).
      if (field.includes('password') && typeof v === 'string' && v.length > 0 && v.length <= 1024) continue;
      if (Array.isArray(body[field]) && Array.isArray(v) && v.length === 0) continue; // an empty list is a valid list
      out.push({ name: `${field} = ${JSON.stringify(v)?.slice(0, 30)}`, req: { ...base, json: { ...body, [field]: v } } });
    }
  }
  out.push({ name: 'an unknown field', req: { ...base, json: { ...body, extra: 1 } } });
  out.push({ name: '__proto__', req: { ...base, raw: JSON.stringify(body).replace(/^\{/, '{"__proto__":{"x":1},') } });
  out.push({ name: 'an array body', req: { ...base, json: [body] } });
  out.push({ name: 'a string body', req: { ...base, json: 'alice' } });
  out.push({ name: 'null', req: { ...base, raw: 'null' } });
  out.push({ name: 'no body', req: { ...base } });
  out.push({ name: 'an empty body', req: { ...base, raw: '' } });
  out.push({ name: 'truncated JSON', req: { ...base, raw: JSON.stringify(body).slice(0, -3) } });
  out.push({ name: 'text/plain', req: { ...base, raw: JSON.stringify(body), contentType: 'text/plain' } });
  out.push({ name: 'form-encoded', req: { ...base, raw: 'username=alice&password=x', contentType: 'application/x-www-form-urlencoded' } });
  out.push({ name: 'a deeply nested body', req: { ...base, raw: '{"username":' + '['.repeat(200) + ']'.repeat(200) + '}' } });
  return out;
}

const PATH_CASES: Array<{ name: string; req: RawRequest }> = [];
for (const method of ['GET', 'DELETE']) {
  for (const [what, path] of [['operators', '/v1/sys/operators/'], ['groups', '/v1/sys/groups/']] as const) {
    for (const name of ['UPPER', 'a', '-x', 'a'.repeat(100), '%2e%2e', '..%2fsecrets', 'a%00b', 'a%20b', '%C3%BCn%C3%AF', '%ZZ']) {
      PATH_CASES.push({ name: `${method} ${what} ${name}`, req: { method, path: path + name } });
    }
  }
}
PATH_CASES.push({ name: 'reset of a malformed name', req: { method: 'POST', path: '/v1/sys/operators/UPPER/reset', json: { password: PASSWORD } } });
PATH_CASES.push({ name: 'group PUT of a malformed name', req: { method: 'PUT', path: '/v1/sys/groups/Bad', json: { policies: [], members: [], external_groups: [] } } });

before(async () => {
  // Refused logins count toward the per-address flood limit and lockout: raised here, where the
  // subject is validation (tests of those limits are elsewhere).
  server = await startDev(tempDir(), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: '1000000/1', KEYHOLD_OPERATORS_ADDRESS_LOCKOUT: '1000/1/1', KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT: '1000/1/1' });
});
after(async () => {
  await server?.stop();
});

async function assertRefused(name: string, req: RawRequest): Promise<void> {
  const res = await request(server.address, req);
  assert.ok(res.status >= 400 && res.status < 500, `${name}: got ${res.status} ${res.text.slice(0, 300)}`);
  assert.match(res.body?.error?.code ?? '', ERROR_CODE, `${name}: ${res.text.slice(0, 300)}`);
}

for (const r of ROUTES) {
  describe(`${r.method} ${r.path}`, () => {
    it('refuses every malformed body with 4xx and a code', async () => {
      for (const c of casesFor(r)) {
        await assertRefused(c.name, { ...c.req, ...(r.anonymous ? {} : { token: server.rootToken }) });
      }
      await assertHealthy(server.address);
    });
  });
}

describe('path parameters and queries', () => {
  it('refuses malformed names with 4xx and a code', async () => {
    for (const c of PATH_CASES) await assertRefused(c.name, { ...c.req, token: server.rootToken });
    for (const q of ['', '?path=', '?path=a&path=b', '?path[]=a', '?path=%ZZ']) await assertRefused(`capabilities${q}`, { method: 'GET', path: `/v1/sys/capabilities${q}`, token: server.rootToken });
    await assertHealthy(server.address);
  });
});
