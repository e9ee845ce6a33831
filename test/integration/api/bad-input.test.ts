/**
 * Bad input against a real `keyhold dev` server: every case asserts the exact 4xx status, the exact
 * error code and body shape, and that the server still answers health with 200 afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_SECRET_PATH_LENGTH } from '../../../src/secrets/types.js';
import { startDev, type DevServer } from '../../helpers/server.js';
import {
  assertError, assertHealthy, assertOk, b64, joinCiphertext, request, splitCiphertext, type RawRequest,
} from './api-helpers.js';
import { flipBit } from '../../helpers/bytes.js';

let server: DevServer;
let root: string;
const addr = () => server.address;

/** Fixtures made in `before` and referenced lazily by the cases. */
const fx = {
  ctHsm: '', // aes256-gcm, protection=hsm, context "ctx-a"
  ctWrapped: '', // aes256-gcm, protection=wrapped, context "ctx-a"
  ctNoContext: '', // aes-hsm without context
  ctRetiredV1: '', // retire-me v1, retired by min_decryption_version=2
  ctRetiredV2: '',
  ctRsa: '',
  sigEc: '',
  sigHmac: '',
  sigRsa: '',
};
const CONTEXT = b64('ctx-a');
const PLAINTEXT = b64('attack at dawn');

const root$ = (r: Omit<RawRequest, 'token'>): RawRequest => ({ ...r, token: root });

interface Case {
  name: string;
  req: () => RawRequest;
  status: number;
  code: string;
}

async function runCase(c: Case): Promise<void> {
  const res = await request(addr(), c.req());
  assertError(res, c.status, c.code, c.name);
  assert.equal(res.headers['x-request-id'], res.body.request_id, 'x-request-id header matches the body');
  await assertHealthy(addr());
}

function table(title: string, cases: Case[]): void {
  describe(title, () => {
    for (const c of cases) it(`${c.name} → ${c.status} ${c.code}`, () => runCase(c));
  });
}

const bad = (name: string, req: () => RawRequest): Case => ({ name, req, status: 400, code: 'ERR_BAD_REQUEST' });
const post = (path: string, json: unknown) => () => root$({ method: 'POST', path, json });
const put = (path: string, json: unknown) => () => root$({ method: 'PUT', path, json });
const rawPost = (path: string, raw: string, method = 'POST') => () => root$({ method, path, raw, ...(raw.length > 1024 * 1024 ? { earlyResponseMs: 5_000 } : {}) });
const get = (path: string) => () => root$({ method: 'GET', path });
const del = (path: string) => () => root$({ method: 'DELETE', path });

before(async () => {
  server = await startDev();
  root = server.rootToken;
  const ok = async (r: RawRequest, status = 200) => {
    const res = await request(addr(), r);
    assertOk(res, status, `${r.method} ${r.path}`);
    return res.body;
  };
  for (const [name, type, protection] of [
    ['aes-hsm', 'aes256-gcm', 'hsm'], ['aes-wrapped', 'aes256-gcm', 'wrapped'], ['ec', 'ec-p256', 'hsm'],
    ['hm', 'hmac-sha256', 'hsm'], ['rsa', 'rsa-2048', 'wrapped'], ['retire-me', 'aes256-gcm', 'wrapped'],
    ['no-delete', 'aes256-gcm', 'wrapped'],
  ] as const) {
    await ok(root$({ method: 'POST', path: '/v1/keys', json: { name, type, protection } }));
  }
  fx.ctHsm = (await ok(root$({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt', json: { plaintext: PLAINTEXT, context: CONTEXT } }))).ciphertext;
  fx.ctWrapped = (await ok(root$({ method: 'POST', path: '/v1/keys/aes-wrapped/encrypt', json: { plaintext: PLAINTEXT, context: CONTEXT } }))).ciphertext;
  fx.ctNoContext = (await ok(root$({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt', json: { plaintext: PLAINTEXT } }))).ciphertext;
  fx.ctRsa = (await ok(root$({ method: 'POST', path: '/v1/keys/rsa/encrypt', json: { plaintext: PLAINTEXT } }))).ciphertext;
  fx.ctRetiredV1 = (await ok(root$({ method: 'POST', path: '/v1/keys/retire-me/encrypt', json: { plaintext: PLAINTEXT } }))).ciphertext;
  await ok(root$({ method: 'POST', path: '/v1/keys/retire-me/rotate' }));
  fx.ctRetiredV2 = (await ok(root$({ method: 'POST', path: '/v1/keys/retire-me/encrypt', json: { plaintext: PLAINTEXT } }))).ciphertext;
  const described = await ok(root$({ method: 'POST', path: '/v1/keys/retire-me/config', json: { min_decryption_version: 2 } }));
  assert.equal(described.min_decryption_version, 2);
  for (const key of ['ec', 'hm', 'rsa'] as const) {
    const sig = (await ok(root$({ method: 'POST', path: `/v1/keys/${key}/sign`, json: { input: PLAINTEXT } }))).signature;
    if (key === 'ec') fx.sigEc = sig;
    else if (key === 'hm') fx.sigHmac = sig;
    else fx.sigRsa = sig;
  }
  await ok(root$({ method: 'PUT', path: '/v1/secrets/app/db', json: { data: { password: 'hunter2' } } }));
});

after(async () => {
  if (server) {
    assert.equal(server.process.exitCode, null, 'server still running at the end');
    await server.stop();
  }
});

describe('fixtures', () => {
  it('the unmodified ciphertexts decrypt (so the failures below are caused by the edits)', async () => {
    for (const [key, ciphertext, context] of [
      ['aes-hsm', fx.ctHsm, CONTEXT], ['aes-wrapped', fx.ctWrapped, CONTEXT], ['aes-hsm', fx.ctNoContext, undefined],
      ['rsa', fx.ctRsa, undefined], ['retire-me', fx.ctRetiredV2, undefined],
    ] as const) {
      const res = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${key}/decrypt`, json: { ciphertext, ...(context ? { context } : {}) } }));
      assertOk(res, 200, key);
      assert.equal(res.body.plaintext, PLAINTEXT);
    }
  });
});

describe('boundary values that are accepted (so the refusals below are about the boundary)', () => {
  it('a 128-character key name can be created and used in URLs', async () => {
    const name = `k${'x'.repeat(127)}`;
    assertOk(await request(addr(), root$({ method: 'POST', path: '/v1/keys', json: { name, type: 'aes256-gcm', protection: 'wrapped' } })));
    const enc = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${name}/encrypt`, json: { plaintext: PLAINTEXT } }));
    assertOk(enc);
    const dec = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${name}/decrypt`, json: { ciphertext: enc.body.ciphertext } }));
    assertOk(dec);
    assert.equal(dec.body.plaintext, PLAINTEXT);
    assertError(await request(addr(), root$({ method: 'POST', path: '/v1/keys', json: { name: `${name}x`, type: 'aes256-gcm', protection: 'wrapped' } })), 400, 'ERR_BAD_REQUEST');
  });

  it('secret field names of 1 and 256 characters, 1024 fields, and the longest secret path are accepted', async () => {
    const data = { a: 1, ['f'.repeat(256)]: 2 };
    assertOk(await request(addr(), root$({ method: 'PUT', path: '/v1/secrets/app/bounds', json: { data } })));
    const back = await request(addr(), root$({ method: 'GET', path: '/v1/secrets/app/bounds' }));
    assertOk(back);
    assert.deepEqual(back.body.data, data);
    const many = Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [`f${i}`, i]));
    assertOk(await request(addr(), root$({ method: 'PUT', path: '/v1/secrets/app/bounds', json: { data: many } })));
  });

  it(`a secret at the longest path (${MAX_SECRET_PATH_LENGTH}) keeps accepting versions past 9; one character more is refused`, async () => {
    const long = `bounds/${'p'.repeat(MAX_SECRET_PATH_LENGTH - 'bounds/'.length)}`;
    for (let v = 1; v <= 11; v++) {
      const res = await request(addr(), root$({ method: 'PUT', path: `/v1/secrets/${long}`, json: { data: { v } } }));
      assertOk(res, 200, `version ${v}`);
      assert.equal(res.body.version, v);
    }
    const back = await request(addr(), root$({ method: 'GET', path: `/v1/secrets/${long}?version=10` }));
    assertOk(back);
    assert.deepEqual(back.body.data, { v: 10 });
    for (const [method, json] of [['PUT', { data: { v: 1 } }], ['GET', undefined], ['DELETE', undefined]] as const) {
      assertError(await request(addr(), root$({ method, path: `/v1/secrets/${long}p`, json })), 400, 'ERR_BAD_REQUEST', `${method} one longer`);
    }
    assertError(await request(addr(), root$({ method: 'GET', path: `/v1/secret-metadata/${long}p` })), 400, 'ERR_BAD_REQUEST');
  });

  it('rsa-2048 accepts the largest plaintext its OAEP hash allows', async () => {
    const key = await request(addr(), root$({ method: 'GET', path: '/v1/keys/rsa' }));
    assertOk(key);
    // 190 bytes fits OAEP-SHA-256 and OAEP-SHA-1 alike.
    assertOk(await request(addr(), root$({ method: 'POST', path: '/v1/keys/rsa/encrypt', json: { plaintext: Buffer.alloc(190, 1).toString('base64') } })));
  });
});

const BIG = 1024 * 1024 + 1024;
table('body size, JSON syntax, content type', [
  { name: 'encrypt body > 1 MiB', req: rawPost('/v1/keys/aes-hsm/encrypt', JSON.stringify({ plaintext: 'A'.repeat(BIG) })), status: 413, code: 'ERR_PAYLOAD_TOO_LARGE' },
  { name: 'secret body > 1 MiB', req: rawPost('/v1/secrets/app/big', JSON.stringify({ data: { v: 'x'.repeat(BIG) } }), 'PUT'), status: 413, code: 'ERR_PAYLOAD_TOO_LARGE' },
  { name: 'create-key body > 1 MiB (unauthenticated is refused first)', req: () => ({ method: 'POST', path: '/v1/keys', raw: 'x'.repeat(BIG), earlyResponseMs: 5_000 }), status: 401, code: 'ERR_UNAUTHENTICATED' },
  bad('truncated JSON', rawPost('/v1/keys/aes-hsm/encrypt', '{"plaintext":')),
  bad('single quotes', rawPost('/v1/keys/aes-hsm/encrypt', "{'plaintext':'aGk='}")),
  bad('trailing comma', rawPost('/v1/keys/aes-hsm/encrypt', '{"plaintext":"aGk=",}')),
  bad('bare word', rawPost('/v1/keys/aes-hsm/encrypt', 'nul')),
  bad('empty body with application/json', rawPost('/v1/keys/aes-hsm/encrypt', '')),
  bad('__proto__ key (prototype poisoning)', rawPost('/v1/secrets/app/p', '{"data":{"__proto__":{"admin":true}}}', 'PUT')),
  bad('constructor.prototype (prototype poisoning)', rawPost('/v1/secrets/app/p', '{"data":{"constructor":{"prototype":{"admin":true}}}}', 'PUT')),
  { name: 'text/plain body', req: () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt', raw: JSON.stringify({ plaintext: PLAINTEXT }), contentType: 'text/plain' }), status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'application/xml body', req: () => root$({ method: 'POST', path: '/v1/keys', raw: '<key name="x"/>', contentType: 'application/xml' }), status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'body without content-type', req: () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt', raw: JSON.stringify({ plaintext: PLAINTEXT }), contentType: null }), status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
  bad('no body where one is required', () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt' })),
]);

const BODY_ROUTES: Array<[string, string, string]> = [
  ['POST', '/v1/keys', 'create key'],
  ['POST', '/v1/keys/aes-hsm/encrypt', 'encrypt'],
  ['POST', '/v1/keys/aes-hsm/decrypt', 'decrypt'],
  ['PUT', '/v1/secrets/app/db', 'secret put'],
  ['PUT', '/v1/policies/p1', 'policy put'],
  ['POST', '/v1/tokens', 'token create'],
  ['POST', '/v1/secret-destroy/app/db', 'secret destroy'],
];
table('JSON of the wrong top-level type', BODY_ROUTES.flatMap(([method, path, what]) =>
  (['[]', '"str"', '42', 'null', 'true', '[{"plaintext":"aGk="}]'] as const).map((raw) => bad(`${what}: ${raw}`, rawPost(path, raw, method)))));

table('wrong field types', [
  bad('encrypt plaintext: 123', post('/v1/keys/aes-hsm/encrypt', { plaintext: 123 })),
  bad('encrypt plaintext: null', post('/v1/keys/aes-hsm/encrypt', { plaintext: null })),
  bad('encrypt plaintext: ["aGk="]', post('/v1/keys/aes-hsm/encrypt', { plaintext: ['aGk='] })),
  bad('encrypt context: {}', post('/v1/keys/aes-hsm/encrypt', { plaintext: PLAINTEXT, context: {} })),
  bad('decrypt ciphertext: 1', post('/v1/keys/aes-hsm/decrypt', { ciphertext: 1 })),
  bad('create name: true', post('/v1/keys', { name: true, type: 'aes256-gcm', protection: 'hsm' })),
  bad('create type: "aes128"', post('/v1/keys', { name: 'x1', type: 'aes128', protection: 'hsm' })),
  bad('create protection: "software"', post('/v1/keys', { name: 'x1', type: 'aes256-gcm', protection: 'software' })),
  bad('create deletion_allowed: "yes"', post('/v1/keys', { name: 'x1', type: 'aes256-gcm', protection: 'hsm', deletion_allowed: 'yes' })),
  bad('secret data: "str"', put('/v1/secrets/app/db', { data: 'str' })),
  bad('secret data: []', put('/v1/secrets/app/db', { data: [] })),
  bad('secret data: null', put('/v1/secrets/app/db', { data: null })),
  bad('secret cas: "1"', put('/v1/secrets/app/db', { data: { a: 1 }, cas: '1' })),
  bad('secret cas: -1', put('/v1/secrets/app/db', { data: { a: 1 }, cas: -1 })),
  bad('secret cas: 1.5', put('/v1/secrets/app/db', { data: { a: 1 }, cas: 1.5 })),
  bad('secret data with an empty field name', put('/v1/secrets/app/db', { data: { '': 1 } })),
  bad('secret data with a 257-character field name', put('/v1/secrets/app/db', { data: { ['f'.repeat(257)]: 1 } })),
  bad('secret data with 1025 fields', put('/v1/secrets/app/db', { data: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`f${i}`, i])) })),
  bad('config min_decryption_version: "2"', post('/v1/keys/retire-me/config', { min_decryption_version: '2' })),
  bad('config min_decryption_version: 0', post('/v1/keys/retire-me/config', { min_decryption_version: 0 })),
  bad('config min_decryption_version above latest', post('/v1/keys/retire-me/config', { min_decryption_version: 9 })),
  bad('config disabled: 1', post('/v1/keys/retire-me/config', { disabled: 1 })),
  bad('datakey bits: 512', post('/v1/keys/aes-hsm/datakey', { bits: 512 })),
  bad('datakey plaintext: "false"', post('/v1/keys/aes-hsm/datakey', { plaintext: 'false' })),
  bad('verify signature: 7', post('/v1/keys/ec/verify', { input: PLAINTEXT, signature: 7 })),
  bad('destroy versions: [0]', post('/v1/secret-destroy/app/db', { versions: [0] })),
  bad('destroy versions: []', post('/v1/secret-destroy/app/db', { versions: [] })),
  bad('destroy versions: [1, 1]', post('/v1/secret-destroy/app/db', { versions: [1, 1] })),
  bad('undelete versions: "1"', post('/v1/secret-undelete/app/db', { versions: '1' })),
  bad('metadata max_versions: 5000', put('/v1/secret-metadata/app/db', { max_versions: 5000 })),
  bad('metadata cas_required: "true"', put('/v1/secret-metadata/app/db', { cas_required: 'true' })),
  bad('token policies: "root"', post('/v1/tokens', { policies: 'root' })),
  bad('token ttl: 0', post('/v1/tokens', { policies: ['root'], ttl: 0 })),
  bad('token ttl: "1y"', post('/v1/tokens', { policies: ['root'], ttl: '1y' })),
  bad('token ttl over the maximum', post('/v1/tokens', { policies: ['root'], ttl: '99999999d' })),
  bad('token display_name with a newline', post('/v1/tokens', { policies: ['root'], display_name: 'a\nb' })),
  bad('policy rules: {}', put('/v1/policies/p1', { rules: {} })),
  { name: 'policy rule with an unknown capability', req: put('/v1/policies/p1', { rules: [{ path: 'secrets/x', capabilities: ['fly'] }] }), status: 400, code: 'ERR_POLICY_INVALID' },
  { name: 'policy rule path a//b', req: put('/v1/policies/p1', { rules: [{ path: 'secrets//x', capabilities: ['read'] }] }), status: 400, code: 'ERR_POLICY_INVALID' },
  { name: 'policy rule path with ..', req: put('/v1/policies/p1', { rules: [{ path: 'secrets/../sys', capabilities: ['read'] }] }), status: 400, code: 'ERR_POLICY_INVALID' },
  { name: 'policy named root', req: put('/v1/policies/root', { rules: [] }), status: 400, code: 'ERR_POLICY_INVALID' },
]);

const X = { unexpected: 1 };
table('unknown fields are rejected in every body schema', [
  bad('create key', post('/v1/keys', { name: 'x2', type: 'aes256-gcm', protection: 'hsm', ...X })),
  bad('config', post('/v1/keys/retire-me/config', { deletion_allowed: false, ...X })),
  bad('encrypt', post('/v1/keys/aes-hsm/encrypt', { plaintext: PLAINTEXT, ...X })),
  bad('decrypt', () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/decrypt', json: { ciphertext: fx.ctNoContext, ...X } })),
  bad('rewrap', () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/rewrap', json: { ciphertext: fx.ctNoContext, ...X } })),
  bad('datakey', post('/v1/keys/aes-hsm/datakey', { bits: 256, ...X })),
  bad('sign', post('/v1/keys/ec/sign', { input: PLAINTEXT, ...X })),
  bad('verify', () => root$({ method: 'POST', path: '/v1/keys/ec/verify', json: { input: PLAINTEXT, signature: fx.sigEc, ...X } })),
  bad('secret put', put('/v1/secrets/app/db', { data: { a: 1 }, ...X })),
  bad('secret put: "version" is not a body field', put('/v1/secrets/app/db', { data: { a: 1 }, version: 1 })),
  bad('undelete', post('/v1/secret-undelete/app/db', { versions: [1], ...X })),
  bad('destroy', post('/v1/secret-destroy/app/db', { versions: [1], ...X })),
  bad('metadata', put('/v1/secret-metadata/app/db', { max_versions: 3, ...X })),
  bad('policy', put('/v1/policies/p1', { rules: [], ...X })),
  bad('policy rule', put('/v1/policies/p1', { rules: [{ path: 'secrets/x', capabilities: ['read'], ...X }] })),
  bad('token', post('/v1/tokens', { policies: ['root'], ...X })),
  bad('unknown query parameter', get('/v1/secrets/app/db?foo=1')),
]);

table('missing required fields', [
  bad('encrypt {}', post('/v1/keys/aes-hsm/encrypt', {})),
  bad('encrypt with only a context', post('/v1/keys/aes-hsm/encrypt', { context: CONTEXT })),
  bad('decrypt {}', post('/v1/keys/aes-hsm/decrypt', {})),
  bad('rewrap {}', post('/v1/keys/aes-hsm/rewrap', {})),
  bad('create key without type', post('/v1/keys', { name: 'x3', protection: 'hsm' })),
  bad('create key without protection', post('/v1/keys', { name: 'x3', type: 'aes256-gcm' })),
  bad('create key without name', post('/v1/keys', { type: 'aes256-gcm', protection: 'hsm' })),
  bad('sign {}', post('/v1/keys/ec/sign', {})),
  bad('verify without signature', post('/v1/keys/ec/verify', { input: PLAINTEXT })),
  bad('verify without input', () => root$({ method: 'POST', path: '/v1/keys/ec/verify', json: { signature: fx.sigEc } })),
  bad('secret put {}', put('/v1/secrets/app/db', {})),
  bad('secret put with only cas', put('/v1/secrets/app/db', { cas: 1 })),
  bad('undelete {}', post('/v1/secret-undelete/app/db', {})),
  bad('destroy {}', post('/v1/secret-destroy/app/db', {})),
  bad('policy {}', put('/v1/policies/p1', {})),
  bad('policy rule without capabilities', put('/v1/policies/p1', { rules: [{ path: 'secrets/x' }] })),
  bad('token {}', post('/v1/tokens', {})),
]);

const BAD_B64 = ['abc', '%%%', 'ab=c', 'a', 'ab=', '====', 'aGk=\n', 'aGk', 'aGk==='];
table('bad base64', BAD_B64.flatMap((v) => [
  bad(`encrypt plaintext ${JSON.stringify(v)}`, post('/v1/keys/aes-hsm/encrypt', { plaintext: v })),
  bad(`encrypt context ${JSON.stringify(v)}`, post('/v1/keys/aes-hsm/encrypt', { plaintext: PLAINTEXT, context: v })),
  bad(`decrypt context ${JSON.stringify(v)}`, () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/decrypt', json: { ciphertext: fx.ctHsm, context: v } })),
  bad(`datakey context ${JSON.stringify(v)}`, post('/v1/keys/aes-hsm/datakey', { context: v })),
  bad(`sign input ${JSON.stringify(v)}`, post('/v1/keys/ec/sign', { input: v })),
  bad(`verify input ${JSON.stringify(v)}`, () => root$({ method: 'POST', path: '/v1/keys/ec/verify', json: { input: v, signature: fx.sigEc } })),
]));

const LONG = 'k'.repeat(200);
table('bad key names', [
  ...['..', '.', 'a/b', LONG, '', '-a', '.hidden', 'a b', 'ä', 'a:b', 'a\u0000b'].map((name) =>
    bad(`create name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, post('/v1/keys', { name, type: 'aes256-gcm', protection: 'wrapped' }))),
  bad('GET /v1/keys/..', get('/v1/keys/..')),
  bad('GET /v1/keys/.', get('/v1/keys/.')),
  bad('GET /v1/keys/%2e%2e', get('/v1/keys/%2e%2e')),
  bad('GET /v1/keys/a%2Fb', get('/v1/keys/a%2Fb')),
  bad('GET /v1/keys/ (empty name)', get('/v1/keys/')),
  bad('GET /v1/keys/<200 chars>', get(`/v1/keys/${LONG}`)),
  bad('POST /v1/keys/<200 chars>/encrypt', post(`/v1/keys/${LONG}/encrypt`, { plaintext: PLAINTEXT })),
  bad('GET /v1/keys/%ZZ (undecodable)', get('/v1/keys/%ZZ')),
  bad('POST /v1/keys/..%2F..%2Fsys/encrypt', post('/v1/keys/..%2F..%2Fsys/encrypt', { plaintext: PLAINTEXT })),
  // '/' is not part of a key name: there is no such route.
  { name: 'GET /v1/keys/a/b', req: get('/v1/keys/a/b'), status: 404, code: 'ERR_NOT_FOUND' },
]);

const SECRET_PATHS = ['a//b', '../x', 'a/./b', '%2e%2e/x', '%2E%2E/x', 'a/%2e%2e/b', 'a%2F%2Fb', 'a/..', './a', '..', '//', 'a/b%00', 'a%20b', '%C3%BC', `${'s/'.repeat(300)}x`, '%ZZ'];
table('bad secret paths', SECRET_PATHS.flatMap((p) => {
  const shown = p.length > 30 ? `${p.slice(0, 12)}…(${p.length})` : p;
  return [
    bad(`GET /v1/secrets/${shown}`, get(`/v1/secrets/${p}`)),
    bad(`PUT /v1/secrets/${shown}`, put(`/v1/secrets/${p}`, { data: { a: 1 } })),
    bad(`DELETE /v1/secrets/${shown}`, del(`/v1/secrets/${p}`)),
    bad(`GET /v1/secret-metadata/${shown}`, get(`/v1/secret-metadata/${p}`)),
    bad(`POST /v1/secret-destroy/${shown}`, post(`/v1/secret-destroy/${p}`, { versions: [1] })),
  ];
}));

describe('a path outside a secret path is never read or written', () => {
  it('PUT /v1/secrets/../x did not create secret "x"', async () => {
    const res = await request(addr(), root$({ method: 'GET', path: '/v1/secrets/x' }));
    assertError(res, 404, 'ERR_SECRET_NOT_FOUND');
    const list = await request(addr(), root$({ method: 'GET', path: '/v1/secrets' }));
    assertOk(list);
    assert.deepEqual(list.body.keys, ['app/', 'bounds/']);
  });
});

table('unknown keys and secrets', [
  ...[
    ['GET', '/v1/keys/nope', undefined], ['DELETE', '/v1/keys/nope', undefined], ['POST', '/v1/keys/nope/rotate', undefined],
    ['POST', '/v1/keys/nope/config', { deletion_allowed: true }], ['POST', '/v1/keys/nope/encrypt', { plaintext: PLAINTEXT }],
    ['POST', '/v1/keys/nope/decrypt', { ciphertext: 'keyhold:nope:v1:AAAA' }], ['POST', '/v1/keys/nope/rewrap', { ciphertext: 'keyhold:nope:v1:AAAA' }],
    ['POST', '/v1/keys/nope/datakey', {}], ['POST', '/v1/keys/nope/sign', { input: PLAINTEXT }],
    ['POST', '/v1/keys/nope/verify', { input: PLAINTEXT, signature: 'keyhold:nope:v1:AAAA' }],
  ].map(([method, path, json]) => ({ name: `${method} ${path}`, req: () => root$({ method: method as string, path: path as string, json }), status: 404, code: 'ERR_KEY_NOT_FOUND' })),
  ...[
    ['GET', '/v1/secrets/app/nope', undefined], ['DELETE', '/v1/secrets/app/nope', undefined], ['GET', '/v1/secret-metadata/app/nope', undefined],
    ['PUT', '/v1/secret-metadata/app/nope', { max_versions: 2 }], ['DELETE', '/v1/secret-metadata/app/nope', undefined],
    ['POST', '/v1/secret-undelete/app/nope', { versions: [1] }], ['POST', '/v1/secret-destroy/app/nope', { versions: [1] }],
    ['GET', '/v1/secrets/app/db?version=99', undefined],
  ].map(([method, path, json]) => ({ name: `${method} ${path}`, req: () => root$({ method: method as string, path: path as string, json }), status: 404, code: 'ERR_SECRET_NOT_FOUND' })),
  { name: 'GET /v1/policies/nope', req: get('/v1/policies/nope'), status: 404, code: 'ERR_NOT_FOUND' },
]);

/** Bit positions in iv(12) ‖ ciphertext ‖ tag(16): first/last IV bit, first/last body bit, first/middle/last tag bit. */
function flipPositions(bodyLength: number): Array<[string, number]> {
  const bits = bodyLength * 8;
  return [
    ['iv bit 0', 0], ['iv bit 50', 50], ['iv last bit', 12 * 8 - 1],
    ['ciphertext first bit', 12 * 8], ['ciphertext last bit', bits - 16 * 8 - 1],
    ['tag first bit', bits - 16 * 8], ['tag bit 64', bits - 8 * 8], ['tag last bit', bits - 1],
  ];
}
const PLAINTEXT_LEN = Buffer.from(PLAINTEXT, 'base64').length;
table('tampered ciphertexts', [
  ...(['aes-hsm', 'aes-wrapped'] as const).flatMap((key) => flipPositions(12 + PLAINTEXT_LEN + 16).map(([where, bit]): Case => ({
    name: `${key}: one-bit flip at ${where}`,
    req: () => {
      const { name, version, body } = splitCiphertext(key === 'aes-hsm' ? fx.ctHsm : fx.ctWrapped);
      assert.equal(body.length, 12 + PLAINTEXT_LEN + 16);
      return root$({ method: 'POST', path: `/v1/keys/${key}/decrypt`, json: { ciphertext: joinCiphertext(name, version, flipBit(body, bit)), context: CONTEXT } });
    },
    status: 400, code: 'ERR_CIPHERTEXT_INVALID',
  }))),
  ...(['aes-hsm', 'aes-wrapped'] as const).flatMap((key): Case[] => {
    const ct = () => (key === 'aes-hsm' ? fx.ctHsm : fx.ctWrapped);
    const dec = (json: () => Record<string, unknown>) => () => root$({ method: 'POST', path: `/v1/keys/${key}/decrypt`, json: json() });
    const inv = (name: string, req: () => RawRequest): Case => ({ name: `${key}: ${name}`, req, status: 400, code: 'ERR_CIPHERTEXT_INVALID' });
    return [
      inv('wrong context', dec(() => ({ ciphertext: ct(), context: b64('ctx-b') }))),
      inv('missing context', dec(() => ({ ciphertext: ct() }))),
      inv('empty context', dec(() => ({ ciphertext: ct(), context: '' }))),
      inv('truncated by one byte', dec(() => { const p = splitCiphertext(ct()); return { ciphertext: joinCiphertext(p.name, p.version, p.body.subarray(0, -1)), context: CONTEXT }; })),
      inv('one byte appended', dec(() => { const p = splitCiphertext(ct()); return { ciphertext: joinCiphertext(p.name, p.version, Buffer.concat([p.body, Buffer.of(0)])), context: CONTEXT }; })),
      inv('shorter than iv + tag', dec(() => ({ ciphertext: `keyhold:${key}:v1:${Buffer.alloc(27).toString('base64')}`, context: CONTEXT }))),
      inv('empty body', dec(() => ({ ciphertext: `keyhold:${key}:v1:`, context: CONTEXT }))),
      inv('rewrap of a flipped ciphertext', () => {
        const p = splitCiphertext(ct());
        return root$({ method: 'POST', path: `/v1/keys/${key}/rewrap`, json: { ciphertext: joinCiphertext(p.name, p.version, flipBit(p.body, 100)), context: CONTEXT } });
      }),
    ];
  }),
  { name: 'aes-hsm ciphertext given to aes-wrapped', req: () => root$({ method: 'POST', path: '/v1/keys/aes-wrapped/decrypt', json: { ciphertext: fx.ctHsm, context: CONTEXT } }), status: 400, code: 'ERR_CIPHERTEXT_INVALID' },
  {
    name: 'aes-hsm ciphertext relabelled as aes-wrapped',
    req: () => { const p = splitCiphertext(fx.ctHsm); return root$({ method: 'POST', path: '/v1/keys/aes-wrapped/decrypt', json: { ciphertext: joinCiphertext('aes-wrapped', 1, p.body), context: CONTEXT } }); },
    status: 400, code: 'ERR_CIPHERTEXT_INVALID',
  },
  {
    name: 'retire-me v2 ciphertext relabelled as v1 of a live key (header is authenticated)',
    req: () => { const p = splitCiphertext(fx.ctRetiredV2); return root$({ method: 'POST', path: '/v1/keys/aes-wrapped/decrypt', json: { ciphertext: joinCiphertext('aes-wrapped', 1, p.body) } }); },
    status: 400, code: 'ERR_CIPHERTEXT_INVALID',
  },
  { name: 'rsa: one-bit flip', req: () => { const p = splitCiphertext(fx.ctRsa); return root$({ method: 'POST', path: '/v1/keys/rsa/decrypt', json: { ciphertext: joinCiphertext('rsa', 1, flipBit(p.body, 1000)) } }); }, status: 400, code: 'ERR_CIPHERTEXT_INVALID' },
  { name: 'rsa: context is refused', req: () => root$({ method: 'POST', path: '/v1/keys/rsa/decrypt', json: { ciphertext: fx.ctRsa, context: CONTEXT } }), status: 400, code: 'ERR_BAD_REQUEST' },
  { name: 'rsa: garbage body', req: post('/v1/keys/rsa/decrypt', { ciphertext: `keyhold:rsa:v1:${Buffer.alloc(256, 0xff).toString('base64')}` }), status: 400, code: 'ERR_CIPHERTEXT_INVALID' },
]);

const GARBAGE = ['', 'garbage', 'keyhold', 'keyhold:aes-hsm', 'keyhold:aes-hsm:v1', 'keyhold:aes-hsm:v0:AAAA', 'keyhold:aes-hsm:vx:AAAA',
  'keyhold:aes-hsm:v-1:AAAA', 'keyhold:aes-hsm:v1:%%%', 'keyhold:aes-hsm:v1:abc', 'keyhold:aes-hsm:v1:AAAA', 'keyhold:aes-hsm:v1:AAAA:AAAA',
  'vault:v1:AAAA', 'KEYHOLD:aes-hsm:v1:AAAA', ' keyhold:aes-hsm:v1:AAAA', 'keyhold:aes-hsm:v01:AAAA', 'keyhold:aes-hsm:v9999999999:AAAA',
  'keyhold::v1:AAAA', 'keyhold:aes-hsm:v1:' + 'A'.repeat(100_000)];
table('garbage ciphertext formats', [
  ...GARBAGE.map((ciphertext) => ({
    name: `decrypt ${JSON.stringify(ciphertext.length > 40 ? `${ciphertext.slice(0, 24)}…(${ciphertext.length})` : ciphertext)}`,
    req: post('/v1/keys/aes-hsm/decrypt', { ciphertext }), status: 400, code: 'ERR_CIPHERTEXT_INVALID',
  })),
  { name: 'rewrap "garbage"', req: post('/v1/keys/aes-wrapped/rewrap', { ciphertext: 'garbage' }), status: 400, code: 'ERR_CIPHERTEXT_INVALID' },
]);

table('key versions', [
  {
    name: 'ciphertext edited v1 → v9', status: 400, code: 'ERR_KEY_VERSION_NOT_FOUND',
    req: () => root$({ method: 'POST', path: '/v1/keys/aes-hsm/decrypt', json: { ciphertext: fx.ctHsm.replace(':v1:', ':v9:'), context: CONTEXT } }),
  },
  {
    name: 'wrapped ciphertext edited v1 → v2', status: 400, code: 'ERR_KEY_VERSION_NOT_FOUND',
    req: () => root$({ method: 'POST', path: '/v1/keys/aes-wrapped/decrypt', json: { ciphertext: fx.ctWrapped.replace(':v1:', ':v2:'), context: CONTEXT } }),
  },
  { name: 'decrypt a retired v1 ciphertext', req: () => root$({ method: 'POST', path: '/v1/keys/retire-me/decrypt', json: { ciphertext: fx.ctRetiredV1 } }), status: 400, code: 'ERR_KEY_VERSION_RETIRED' },
  { name: 'rewrap a retired v1 ciphertext', req: () => root$({ method: 'POST', path: '/v1/keys/retire-me/rewrap', json: { ciphertext: fx.ctRetiredV1 } }), status: 400, code: 'ERR_KEY_VERSION_RETIRED' },
  {
    name: 'verify with a signature edited v1 → v9', status: 400, code: 'ERR_KEY_VERSION_NOT_FOUND',
    req: () => root$({ method: 'POST', path: '/v1/keys/ec/verify', json: { input: PLAINTEXT, signature: fx.sigEc.replace(':v1:', ':v9:') } }),
  },
]);

table('operations a key type does not support', [
  { name: 'encrypt with ec-p256', req: post('/v1/keys/ec/encrypt', { plaintext: PLAINTEXT }), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'decrypt with ec-p256', req: post('/v1/keys/ec/decrypt', { ciphertext: 'keyhold:ec:v1:AAAA' }), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'datakey with ec-p256', req: post('/v1/keys/ec/datakey', {}), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'datakey with rsa-2048', req: post('/v1/keys/rsa/datakey', {}), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'encrypt with hmac-sha256', req: post('/v1/keys/hm/encrypt', { plaintext: PLAINTEXT }), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'sign with aes256-gcm', req: post('/v1/keys/aes-hsm/sign', { input: PLAINTEXT }), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'verify with aes256-gcm', req: post('/v1/keys/aes-wrapped/verify', { input: PLAINTEXT, signature: 'keyhold:aes-wrapped:v1:AAAA' }), status: 400, code: 'ERR_KEY_OPERATION_UNSUPPORTED' },
  { name: 'rsa-2048 plaintext of 300 bytes', req: post('/v1/keys/rsa/encrypt', { plaintext: Buffer.alloc(300, 7).toString('base64') }), status: 400, code: 'ERR_PLAINTEXT_TOO_LARGE' },
  { name: 'rsa-2048 encrypt with a context', req: post('/v1/keys/rsa/encrypt', { plaintext: PLAINTEXT, context: CONTEXT }), status: 400, code: 'ERR_BAD_REQUEST' },
]);

table('conflicts', [
  { name: 'secret put with cas 5 (current is 1)', req: put('/v1/secrets/app/db', { data: { a: 1 }, cas: 5 }), status: 409, code: 'ERR_CAS_MISMATCH' },
  { name: 'secret put with cas 0 on an existing secret', req: put('/v1/secrets/app/db', { data: { a: 1 }, cas: 0 }), status: 409, code: 'ERR_CAS_MISMATCH' },
  { name: 'secret put with cas 1e300', req: put('/v1/secrets/app/db', { data: { a: 1 }, cas: 1e300 }), status: 409, code: 'ERR_CAS_MISMATCH' },
  { name: 'create a key that exists', req: post('/v1/keys', { name: 'aes-hsm', type: 'aes256-gcm', protection: 'hsm' }), status: 409, code: 'ERR_KEY_EXISTS' },
  { name: 'create a key that exists, other type', req: post('/v1/keys', { name: 'ec', type: 'hmac-sha256', protection: 'wrapped' }), status: 409, code: 'ERR_KEY_EXISTS' },
  { name: 'delete a key without deletion_allowed', req: del('/v1/keys/no-delete'), status: 409, code: 'ERR_KEY_DELETION_NOT_ALLOWED' },
]);

table('authentication', [
  { name: 'no Authorization header', req: () => ({ method: 'GET', path: '/v1/keys' }), status: 401, code: 'ERR_UNAUTHENTICATED' },
  ...['Basic YTpi', 'Bearer', 'Bearer ', 'Bearer a b', 'Token khs.x', 'khs.x', 'Bearer khs.nope', 'Bearer not-a-keyhold-token',
    `Bearer khs.${'A'.repeat(200)}`, 'Bearer khs.', 'Bearer\tkhs.x x'].map((authorization) => ({
    name: `Authorization: ${JSON.stringify(authorization.length > 30 ? `${authorization.slice(0, 20)}…` : authorization)}`,
    req: () => ({ method: 'GET', path: '/v1/keys', headers: { authorization } }), status: 401, code: 'ERR_UNAUTHENTICATED',
  })),
  { name: 'root token with one character changed', req: () => ({ method: 'GET', path: '/v1/keys', token: root.slice(0, -1) + (root.endsWith('A') ? 'B' : 'A') }), status: 401, code: 'ERR_UNAUTHENTICATED' },
  { name: 'unauthenticated encrypt with a valid body', req: () => ({ method: 'POST', path: '/v1/keys/aes-hsm/encrypt', json: { plaintext: PLAINTEXT } }), status: 401, code: 'ERR_UNAUTHENTICATED' },
  { name: 'unauthenticated request for an unknown route', req: () => ({ method: 'GET', path: '/v1/nope' }), status: 401, code: 'ERR_UNAUTHENTICATED' },
]);

table('unknown routes and methods', [
  { name: 'GET /v1/nope', req: get('/v1/nope'), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'GET /', req: get('/'), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'GET /v2/keys', req: get('/v2/keys'), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'POST /v1/keys/aes-hsm/explode', req: post('/v1/keys/aes-hsm/explode', {}), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'DELETE /v1/keys (no such method)', req: del('/v1/keys'), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'PATCH /v1/secrets/app/db', req: () => root$({ method: 'PATCH', path: '/v1/secrets/app/db', json: { data: {} } }), status: 404, code: 'ERR_NOT_FOUND' },
  { name: 'GET /v1/keys//', req: get('/v1/keys//'), status: 404, code: 'ERR_NOT_FOUND' },
]);

table('query strings', [
  bad('version=abc', get('/v1/secrets/app/db?version=abc')),
  bad('version=0', get('/v1/secrets/app/db?version=0')),
  bad('version=-1', get('/v1/secrets/app/db?version=-1')),
  bad('version=1.5', get('/v1/secrets/app/db?version=1.5')),
  bad('version=1e3', get('/v1/secrets/app/db?version=1e3')),
  bad('version=01', get('/v1/secrets/app/db?version=01')),
  bad('version=9999999999', get('/v1/secrets/app/db?version=9999999999')),
  bad('version given twice', get('/v1/secrets/app/db?version=1&version=1')),
  bad('list=yes', get('/v1/secrets/app?list=yes')),
  bad('delete versions=0', del('/v1/secrets/app/db?versions=0')),
  bad('delete versions=1,,2', del('/v1/secrets/app/db?versions=1,,2')),
  bad('delete versions=abc', del('/v1/secrets/app/db?versions=abc')),
]);

table('signatures that cannot be parsed', [
  ...['garbage', '', 'keyhold:ec:v1:%%%', 'keyhold:ec:v1:abc', 'keyhold:ec:1:AAAA'].map((signature) => ({
    name: `verify ${JSON.stringify(signature)}`, req: post('/v1/keys/ec/verify', { input: PLAINTEXT, signature }), status: 400, code: 'ERR_SIGNATURE_INVALID',
  })),
  { name: 'verify with the signature of another key', req: () => root$({ method: 'POST', path: '/v1/keys/ec/verify', json: { input: PLAINTEXT, signature: fx.sigHmac } }), status: 400, code: 'ERR_SIGNATURE_INVALID' },
]);

describe('tampered signatures', () => {
  // What the code does: a well-formed signature that does not verify is 200 {valid:false};
  // ERR_SIGNATURE_INVALID (400) is only for signatures that cannot be parsed or name another key.
  for (const key of ['ec', 'hm', 'rsa'] as const) {
    const sig = () => (key === 'ec' ? fx.sigEc : key === 'hm' ? fx.sigHmac : fx.sigRsa);
    it(`${key}: the untouched signature is valid`, async () => {
      const res = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${key}/verify`, json: { input: PLAINTEXT, signature: sig() } }));
      assertOk(res);
      assert.deepEqual(res.body, { valid: true, version: 1 });
    });
    it(`${key}: a one-bit flip anywhere gives 200 {valid:false}, never valid:true`, async () => {
      const { name, version, body } = splitCiphertext(sig());
      const bits = body.length * 8;
      for (const bit of [0, 1, 7, 8, Math.floor(bits / 2), bits - 9, bits - 1]) {
        const res = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${key}/verify`, json: { input: PLAINTEXT, signature: joinCiphertext(name, version, flipBit(body, bit)) } }));
        assertOk(res, 200, `bit ${bit}`);
        assert.deepEqual(res.body, { valid: false, version: 1 }, `bit ${bit}`);
      }
      await assertHealthy(addr());
    });
    it(`${key}: a one-bit flip in the input gives {valid:false}`, async () => {
      const input = flipBit(Buffer.from(PLAINTEXT, 'base64'), 3).toString('base64');
      const res = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${key}/verify`, json: { input, signature: sig() } }));
      assertOk(res);
      assert.deepEqual(res.body, { valid: false, version: 1 });
    });
    it(`${key}: truncated, extended and empty signature bodies give {valid:false}`, async () => {
      const { name, version, body } = splitCiphertext(sig());
      for (const edited of [body.subarray(0, -1), Buffer.concat([body, Buffer.of(1)]), Buffer.alloc(0), Buffer.alloc(body.length)]) {
        const res = await request(addr(), root$({ method: 'POST', path: `/v1/keys/${key}/verify`, json: { input: PLAINTEXT, signature: joinCiphertext(name, version, edited) } }));
        assertOk(res, 200, `length ${edited.length}`);
        assert.equal(res.body.valid, false, `length ${edited.length}`);
      }
    });
  }
});

describe('the server survived', () => {
  it('is still running and healthy', async () => {
    assert.equal(server.process.exitCode, null);
    assert.equal(server.process.signalCode, null);
    await assertHealthy(addr());
    assert.doesNotMatch(server.output(), /"level":(50|60)/, 'no error or fatal log lines');
  });
});
