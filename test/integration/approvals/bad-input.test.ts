/**
 * Malformed requests on every quorum-approval route, against a real `keyhold dev` server: each is
 * a 4xx with its error code and the error body shape, never a 5xx, and the server stays healthy.
 * The classes are generated for every route (no body, wrong JSON types, missing and extra fields,
 * each field of the wrong type or too long, bad ids and names, wrong media type, invalid or too
 * deep JSON), not picked as examples.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertHealthy, request, type RawRequest } from '../api/api-helpers.js';
import { createPerson, pending, type Person } from './support.js';

let server: DevServer;
const api = apiCaller(() => ({ address: server.address, root: server.rootToken }));
let rita: Person;
let id = '';
const UNKNOWN_ID = 'apr_AAAAAAAAAAAAAAAAAAAAAA';
const HASH = 'a'.repeat(64);

before(async () => {
  server = await startDev(tempDir());
  await api.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
  await api.asRoot('PUT', '/v1/policies/approvals-admin', { rules: [
    { path: 'sys/approvals/*', capabilities: ['read', 'list', 'update', 'delete'] }, { path: 'sys/approvals/requests', capabilities: ['list'] }, { path: 'sys/approvals/policies', capabilities: ['list'] },
  ] });
  await api.asRoot('PUT', '/v1/sys/groups/ops', { policies: ['keys-admin', 'approvals-admin'], members: ['rita', 'alice'], external_groups: [] });
  rita = await createPerson(api, 'rita');
  await api.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'hsm' });
  await api.asRoot('PUT', '/v1/sys/approvals/policies/p', { operations: ['key-rotate'], paths: ['keys/*'], group: 'ops', required: 1 });
  id = pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate')).id;
});

after(async () => {
  await server?.stop();
});

interface Case { name: string; req: () => RawRequest; status: number; code: string }

const as = (r: Omit<RawRequest, 'token'>): RawRequest => ({ ...r, token: rita.token });

/** Bodies of the wrong JSON type, and JSON that is not JSON. */
function wrongBodies(method: string, path: () => string): Case[] {
  const bad = (name: string, req: () => RawRequest, status = 400, code = 'ERR_BAD_REQUEST'): Case => ({ name: `${method} ${name}`, req, status, code });
  return [
    bad('no body', () => as({ method, path: path() })),
    bad('empty JSON body', () => as({ method, path: path(), raw: '' })),
    ...[['null', null], ['array', []], ['string', 'x'], ['number', 1], ['boolean', true], ['empty object', {}]].map(([n, v]) => bad(`body ${n as string}`, () => as({ method, path: path(), json: v }))),
    bad('invalid JSON', () => as({ method, path: path(), raw: '{"code": ' })),
    bad('__proto__ key', () => as({ method, path: path(), raw: '{"__proto__": {"x": 1}}' })),
    bad('text/plain', () => as({ method, path: path(), raw: '{}', contentType: 'text/plain' }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE'),
    bad('JSON nested 100 deep', () => as({ method, path: path(), raw: `${'['.repeat(100)}${']'.repeat(100)}` }), 400, 'ERR_JSON_TOO_DEEP'),
  ];
}

/** Each field missing, of every wrong type, too long; and an extra field. */
function fieldCases(method: string, path: () => string, valid: Record<string, unknown>, limits: Record<string, unknown[]>, optional: string[] = []): Case[] {
  const cases: Case[] = [];
  const bad = (name: string, json: unknown): Case => ({ name: `${method} ${name}`, req: () => as({ method, path: path(), json }), status: 400, code: 'ERR_BAD_REQUEST' });
  for (const field of Object.keys(valid)) {
    const { [field]: _omitted, ...rest } = valid;
    if (!optional.includes(field)) cases.push(bad(`without ${field}`, rest));
    for (const wrong of [null, 1, true, {}, [], 'x'.repeat(5000)]) {
      if (typeof valid[field] === typeof wrong && !Array.isArray(valid[field]) && typeof wrong !== 'string') continue;
      cases.push(bad(`${field} = ${JSON.stringify(wrong).slice(0, 20)}`, { ...valid, [field]: wrong }));
    }
    for (const value of limits[field] ?? []) cases.push(bad(`${field} = ${JSON.stringify(value).slice(0, 40)}`, { ...valid, [field]: value }));
  }
  cases.push(bad('an extra field', { ...valid, extra: 1 }));
  return cases;
}

const approvePath = () => `/v1/sys/approvals/${id}/approve`;
const denyPath = () => `/v1/sys/approvals/${id}/deny`;
const policyPath = () => '/v1/sys/approvals/policies/q';

const CASES: Case[] = [
  // Approve and deny: a hash and a code.
  ...wrongBodies('POST', approvePath),
  ...fieldCases('POST', approvePath, { params_sha256: HASH, code: '123456' }, {
    params_sha256: ['', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), `${'a'.repeat(64)}\n`], code: ['', 'x'.repeat(65)],
  }),
  ...wrongBodies('POST', denyPath),
  ...fieldCases('POST', denyPath, { code: '123456', reason: 'no' }, { code: ['', 'x'.repeat(65)], reason: ['', 'x'.repeat(513)] }, ['reason']),
  // Cancel and execute take no body: any body is refused before anything happens.
  ...['cancel', 'execute', 'sweep'].flatMap((what) => [{}, { body: { disabled: false } }, []].map((json): Case => ({
    name: `POST ${what} with body ${JSON.stringify(json)}`, status: 400, code: 'ERR_BAD_REQUEST',
    req: () => as({ method: 'POST', path: what === 'sweep' ? '/v1/sys/approvals/sweep' : `/v1/sys/approvals/${id}/${what}`, json }),
  }))),
  // Approval policies.
  ...wrongBodies('PUT', policyPath),
  ...fieldCases('PUT', policyPath, { operations: ['key-rotate'], paths: ['keys/*'], group: 'ops', required: 1 }, {
    operations: [[], [''], [1], ['x'.repeat(65)], Array.from({ length: 33 }, (_, i) => `op${i}`)],
    paths: [[], [''], [1], ['x'.repeat(513)], Array.from({ length: 65 }, (_, i) => `keys/${i}`)],
    group: [''],
    required: [0, -1, 33, 1.5, '1'],
  }),
  ...[
    ['an unknown operation', { operations: ['keys.rotat'] }], ['a read-only operation', { operations: ['keys.encrypt'] }], ['an operation twice', { operations: ['key-rotate', 'key-rotate'] }],
    ['a path with ..', { paths: ['keys/../sys'] }], ['a path with //', { paths: ['keys//x'] }], ['a star inside a path', { paths: ['ke*ys'] }],
    ['a placeholder path', { paths: ['keys/{{k8s.namespace}}'] }], ['a group name with capitals', { group: 'Ops' }], ['a group without members enough', { required: 3 }],
  ].map(([name, change]): Case => ({
    name: `PUT policy with ${name as string}`, status: 400, code: 'ERR_APPROVAL_POLICY_INVALID',
    req: () => as({ method: 'PUT', path: policyPath(), json: { operations: ['key-rotate'], paths: ['keys/*'], group: 'ops', required: 1, ...(change as object) } }),
  })),
  // Ids, names and queries.
  ...['not-an-id', 'apr_short', `apr_${'A'.repeat(23)}`, 'apr_AAAAAAAAAAAAAAAAAAAA%2F', '..', 'apr_AAAAAAAAAAAAAAAAAAAAA!'].flatMap((bad): Case[] => [
    { name: `GET request ${bad}`, req: () => as({ method: 'GET', path: `/v1/sys/approvals/${bad}` }), status: 400, code: 'ERR_BAD_REQUEST' },
    { name: `POST approve ${bad}`, req: () => as({ method: 'POST', path: `/v1/sys/approvals/${bad}/approve`, json: { params_sha256: HASH, code: '123456' } }), status: 400, code: 'ERR_BAD_REQUEST' },
    { name: `POST execute ${bad}`, req: () => as({ method: 'POST', path: `/v1/sys/approvals/${bad}/execute` }), status: 400, code: 'ERR_BAD_REQUEST' },
  ]),
  ...['Upper', `a${'b'.repeat(64)}`, '.hidden', 'a%20b', 'a%2Fb'].flatMap((bad): Case[] => ['GET', 'DELETE'].map((method) => ({
    name: `${method} policy ${bad}`, req: () => as({ method, path: `/v1/sys/approvals/policies/${bad}` }), status: 400, code: 'ERR_BAD_REQUEST',
  }))),
  ...['state=bogus', 'state=', 'state=pending&extra=1', 'state[]=pending', 'state=PENDING', 'state=pending&state=approved',
    // The list's limit: a whole number from 1 to 1000, written plainly.
    'limit=0', 'limit=-1', 'limit=1001', 'limit=9999', 'limit=99999999999999999999', 'limit=1.5', 'limit=1e2', 'limit=abc', 'limit=', 'limit=01', 'limit=%2010',
    'limit=1&limit=2', 'limit[]=1', 'limit=10&state=bogus'].map((q): Case => ({
    name: `GET list ?${q}`, req: () => as({ method: 'GET', path: `/v1/sys/approvals?${q}` }), status: 400, code: 'ERR_BAD_REQUEST',
  })),
  // Well-formed, but nothing there.
  { name: 'GET unknown request', req: () => as({ method: 'GET', path: `/v1/sys/approvals/${UNKNOWN_ID}` }), status: 404, code: 'ERR_APPROVAL_NOT_FOUND' },
  { name: 'approve unknown request', req: () => as({ method: 'POST', path: `/v1/sys/approvals/${UNKNOWN_ID}/approve`, json: { params_sha256: HASH, code: '123456' } }), status: 404, code: 'ERR_APPROVAL_NOT_FOUND' },
  { name: 'execute unknown request', req: () => as({ method: 'POST', path: `/v1/sys/approvals/${UNKNOWN_ID}/execute` }), status: 404, code: 'ERR_APPROVAL_NOT_FOUND' },
  { name: 'GET unknown policy', req: () => as({ method: 'GET', path: '/v1/sys/approvals/policies/nope' }), status: 404, code: 'ERR_APPROVAL_POLICY_NOT_FOUND' },
];

describe('malformed requests on the approval routes', () => {
  it('the table covers every approval route of the OpenAPI document', async () => {
    const doc = await request(server.address, { method: 'GET', path: '/v1/openapi.json' });
    const routes = Object.entries(doc.body.paths as Record<string, object>).filter(([p]) => p.startsWith('/v1/sys/approvals'))
      .flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    assert.deepEqual(routes, [
      'DELETE /v1/sys/approvals/policies/{name}', 'GET /v1/sys/approvals', 'GET /v1/sys/approvals/policies', 'GET /v1/sys/approvals/policies/{name}', 'GET /v1/sys/approvals/{id}',
      'POST /v1/sys/approvals/sweep', 'POST /v1/sys/approvals/{id}/approve', 'POST /v1/sys/approvals/{id}/cancel', 'POST /v1/sys/approvals/{id}/deny', 'POST /v1/sys/approvals/{id}/execute',
      'PUT /v1/sys/approvals/policies/{name}',
    ]);
  });

  for (const c of CASES) {
    it(`${c.name} → ${c.status} ${c.code}`, async () => {
      const res = await request(server.address, c.req());
      assertError(res, c.status, c.code, c.name);
    });
  }

  it('the list takes a valid limit and state together, and says when it cut the list short', async () => {
    pending(await api.call(rita.token, 'POST', '/v1/keys/pay/rotate'), 'a second request');
    const all = await api.call(rita.token, 'GET', '/v1/sys/approvals');
    assert.equal(all.body.approvals.length, 2);
    assert.equal(all.body.truncated, undefined);
    const one = await api.call(rita.token, 'GET', '/v1/sys/approvals?limit=1&state=pending');
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.body.approvals.map((a: { id: string }) => a.id), [all.body.approvals[0].id], 'the newest');
    assert.equal(one.body.truncated, true);
    const max = await api.call(rita.token, 'GET', '/v1/sys/approvals?limit=1000&state=denied');
    assert.deepEqual(max.body, { approvals: [] });
  });

  it('left the request as it was, and the server healthy', async () => {
    const shown = await api.call(rita.token, 'GET', `/v1/sys/approvals/${id}`);
    assert.equal(shown.body.state, 'pending');
    assert.equal(shown.body.approvals.length, 0);
    assertError(await api.call(rita.token, 'GET', '/v1/sys/approvals/policies/q'), 404, 'ERR_APPROVAL_POLICY_NOT_FOUND');
    await assertHealthy(server.address);
  });
});
