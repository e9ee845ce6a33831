/**
 * Input limits and slow clients, as an attacker would try them, against a real `keyhold server`
 * (SoftHSM token, SQLite, audit log) configured with short client timeouts. Every refusal asserts
 * its exact status and error code, and that nothing was stored.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { validateConfig } from '../../../src/core/config.js';
import { isKeyholdError } from '../../../src/errors.js';
import { devServerConfig, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { parseListedObjects } from '../../helpers/pkcs11-tool.js';
import { pkcs11ToolListObjects } from '../server/support.js';
import {
  assertError, assertHealthy, assertOk, b64, exchange, parseRawResponse, request, trickle, type RawRequest, type RawResponse,
} from './api-helpers.js';

/** The server's client timeouts in this file (short, so slow-client cases finish quickly). */
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
/** Node checks the timeouts periodically (a quarter of the headers timeout here), and the machine is shared: allowed lateness. */
const SLACK_MS = 1500;

let server: DevServer;
let dataDir: string;
let root: string;
/** Tokens for the existence-oracle cases. */
const tokens = { none: '', readOnly: '', createOnly: '', updateOnly: '', both: '' };
const addr = () => server.address;
const asRoot = (r: Omit<RawRequest, 'token'>): RawRequest => ({ ...r, token: root });

async function ok(r: RawRequest, status = 200): Promise<any> {
  const res = await request(addr(), r);
  assertOk(res, status, `${r.method} ${r.path}`);
  return res.body;
}

async function status(path: string): Promise<number> {
  return (await request(addr(), asRoot({ method: 'GET', path }))).status;
}

before(async () => {
  // `keyhold dev` makes the token, the store and the root token; then the same data is served by
  // `keyhold server --config` with short client timeouts (dev has no flags for them).
  dataDir = tempDir('keyhold-limits-');
  const dev = await startDev(dataDir);
  await dev.stop();
  const configFile = join(dataDir, 'limits.yaml');
  writeFileSync(configFile, stringify(devServerConfig(dataDir, { api: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS } })));
  server = await startServer(configFile, { SOFTHSM2_CONF: join(dataDir, 'softhsm2.conf') }, dataDir);
  root = server.rootToken;
  assert.ok(root, 'root token of the dev data dir');

  await ok(asRoot({ method: 'POST', path: '/v1/keys', json: { name: 'enc', type: 'aes256-gcm', protection: 'wrapped' } }));
  await ok(asRoot({ method: 'PUT', path: '/v1/secrets/app/existing', json: { data: { v: 1 } } }));
  await ok(asRoot({ method: 'PUT', path: '/v1/policies/present', json: { rules: [] } }));
  await ok(asRoot({ method: 'PUT', path: '/v1/auth/kubernetes/roles/present', json: { bound_namespaces: ['a'], bound_service_accounts: ['b'], policies: ['present'] } }), 204);
  const policy = async (name: string, capabilities: string[]) => {
    // Every path the oracle cases touch, with the same capabilities; one unrelated grant so a token
    // holding "nothing" on these paths still has a policy (tokens without any are refused earlier).
    const rules = capabilities.length === 0 ? [] : ['secrets/app/*', 'keys/*', 'sys/policies/*', 'sys/auth/kubernetes/roles/*'].map((path) => ({ path, capabilities }));
    await ok(asRoot({ method: 'PUT', path: `/v1/policies/${name}`, json: { rules: [...rules, { path: 'secrets/elsewhere', capabilities: ['read'] }] } }));
    return (await ok(asRoot({ method: 'POST', path: '/v1/tokens', json: { policies: [name] } }))).token as string;
  };
  tokens.none = await policy('p-none', []);
  tokens.readOnly = await policy('p-read', ['read', 'list']);
  tokens.createOnly = await policy('p-create', ['create', 'read']);
  tokens.updateOnly = await policy('p-update', ['update', 'read']);
  tokens.both = await policy('p-both', ['create', 'update', 'read']);
});

after(async () => {
  if (server) {
    assert.equal(server.process.exitCode, null, 'server still running at the end');
    await server.stop();
  }
});

interface Case {
  name: string;
  req: () => RawRequest;
  status: number;
  code: string;
  /** A GET (as root) that must still answer 404 afterwards: nothing was stored. */
  absent?: string;
}

function table(title: string, cases: Case[]): void {
  describe(title, () => {
    for (const c of cases) {
      it(`${c.name} → ${c.status} ${c.code}`, async () => {
        const res = await request(addr(), c.req());
        assertError(res, c.status, c.code, c.name);
        if (c.absent) assert.equal(await status(c.absent), 404, `${c.absent} was stored`);
        await assertHealthy(addr());
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Nesting depth

/** `levels` nested objects around 1: objects(0) = 1, objects(2) = {"a":{"a":1}}. */
const objects = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
/** `levels` nested arrays: arrays(2) = [[]]. */
const arrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
/** Alternating arrays and objects. */
const mixed = (levels: number) => {
  let text = '0';
  for (let i = 0; i < levels; i++) text = i % 2 === 0 ? `[${text}]` : `{"m":${text}}`;
  return text;
};

let n = 0;
const fresh = (prefix: string) => `${prefix}-${++n}`;

/** A secret PUT with raw text as body: the path is fresh, so `absent` proves nothing was written. */
function secretCase(name: string, body: (data: string) => string, data: string, expect: { status: number; code: string }, extra: Partial<RawRequest> = {}): Case {
  const path = fresh('app/limits');
  return { name, req: () => ({ ...asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, raw: body(data) }), ...extra }), ...expect, absent: `/v1/secrets/${path}` };
}
const dataBody = (data: string) => `{"data":${data}}`;
const tooDeep = { status: 400, code: 'ERR_JSON_TOO_DEEP' };
const bad = { status: 400, code: 'ERR_BAD_REQUEST' };

describe('nesting depth: the boundaries that are accepted', () => {
  for (const [what, data] of [
    ['secret data of 32 levels (objects)', objects(32)],
    ['secret data of 32 levels (an object holding 31 levels of arrays)', `{"a":${arrays(31)}}`],
    ['brackets inside strings do not count', `{"a":"${'['.repeat(100_000)}","b":"\\"{{{{"}`],
  ] as const) {
    it(`${what} → 200, and reads back the same`, async () => {
      const path = fresh('app/limits-ok');
      await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, raw: dataBody(data) }));
      const back = await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }));
      assert.deepEqual(back.data, JSON.parse(data));
    });
  }
});

table('nesting depth: refused', [
  secretCase('secret data of 33 levels (objects)', dataBody, objects(33), tooDeep),
  secretCase('secret data of 33 levels (arrays inside the data object)', dataBody, `{"a":${arrays(32)}}`, tooDeep),
  secretCase('secret data of 33 levels (mixed)', dataBody, `{"a":${mixed(32)}}`, tooDeep),
  secretCase('secret data of 63 levels (body 64: under the body limit, over the secret one)', dataBody, objects(63), tooDeep),
  secretCase('secret data of 64 levels (body 65: over the body limit)', dataBody, objects(64), tooDeep),
  secretCase('secret data 10,000 levels deep (arrays)', dataBody, `{"a":${arrays(9_999)}}`, tooDeep),
  secretCase('secret data 10,000 levels deep (objects)', dataBody, objects(10_000), tooDeep),
  secretCase('secret data 300,000 levels deep (under the 1 MiB body limit)', dataBody, `{"a":${arrays(300_000)}}`, tooDeep),
  secretCase('deep value beside a valid one', (d) => `{"data":{"ok":1,"deep":${d}}}`, arrays(70), tooDeep),
  secretCase('unclosed deep nesting', (d) => `{"data":{"a":${d}`, '['.repeat(10_000), tooDeep),
  secretCase('a top-level array 10,000 deep', (d) => d, arrays(10_000), tooDeep),
  secretCase('deep nesting from an unauthenticated caller is refused for the token first', dataBody, objects(10_000), { status: 401, code: 'ERR_UNAUTHENTICATED' }, { token: undefined }),
  { name: 'key encrypt: context 10,000 levels deep', req: () => asRoot({ method: 'POST', path: '/v1/keys/enc/encrypt', raw: `{"plaintext":"${b64('x')}","context":${arrays(10_000)}}` }), ...tooDeep },
  { name: 'key encrypt: context 40 levels deep (under the body limit: the schema refuses it)', req: () => asRoot({ method: 'POST', path: '/v1/keys/enc/encrypt', raw: `{"plaintext":"${b64('x')}","context":${arrays(40)}}` }), ...bad },
  { name: 'key create: 10,000 levels deep', req: () => asRoot({ method: 'POST', path: '/v1/keys', raw: `{"name":"deep","type":"aes256-gcm","protection":"wrapped","x":${objects(10_000)}}` }), ...tooDeep, absent: '/v1/keys/deep' },
  { name: 'key config: 10,000 levels deep', req: () => asRoot({ method: 'POST', path: '/v1/keys/enc/config', raw: `{"disabled":${arrays(10_000)}}` }), ...tooDeep },
  { name: 'policy put: rules 10,000 levels deep', req: () => asRoot({ method: 'PUT', path: '/v1/policies/deep', raw: `{"rules":${arrays(10_000)}}` }), ...tooDeep, absent: '/v1/policies/deep' },
  { name: 'policy put: 65 levels (just over the body limit)', req: () => asRoot({ method: 'PUT', path: '/v1/policies/deep', raw: `{"rules":${arrays(64)}}` }), ...tooDeep, absent: '/v1/policies/deep' },
  { name: 'policy put: 64 levels (at the body limit: the schema refuses it)', req: () => asRoot({ method: 'PUT', path: '/v1/policies/deep', raw: `{"rules":${arrays(63)}}` }), status: 400, code: 'ERR_BAD_REQUEST', absent: '/v1/policies/deep' },
  { name: 'role put: 10,000 levels deep', req: () => asRoot({ method: 'PUT', path: '/v1/auth/kubernetes/roles/deep', raw: `{"bound_namespaces":["a"],"bound_service_accounts":["b"],"policies":${mixed(10_000)}}` }), ...tooDeep, absent: '/v1/auth/kubernetes/roles/deep' },
  { name: 'token create: 10,000 levels deep', req: () => asRoot({ method: 'POST', path: '/v1/tokens', raw: `{"policies":${arrays(10_000)}}` }), ...tooDeep },
  { name: 'secret metadata: 10,000 levels deep', req: () => asRoot({ method: 'PUT', path: '/v1/secret-metadata/app/existing', raw: `{"max_versions":${arrays(10_000)}}` }), ...tooDeep },
  { name: 'Kubernetes login (anonymous route): 10,000 levels deep', req: () => ({ method: 'POST', path: '/v1/auth/kubernetes/login', raw: `{"role":"present","jwt":${arrays(10_000)}}` }), ...tooDeep },
]);

// ---------------------------------------------------------------------------------------------
// 2. Numbers that are not finite

describe('numbers: the boundaries that are accepted', () => {
  for (const [text, value] of [['1e308', 1e308], ['-1.7976931348623157e308', -1.7976931348623157e308], ['1e-400', 0], ['-0', -0]] as const) {
    it(`${text} is stored as ${value}`, async () => {
      const path = fresh('app/num-ok');
      await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, raw: `{"data":{"n":${text}}}` }));
      assert.equal((await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }))).data.n, value === 0 ? 0 : value);
    });
  }
});

table('numbers that overflow to ±Infinity', [
  ...['1e400', '-1e400', '1e309', '-1e309', '1E400', '2e+308', `1${'0'.repeat(400)}`, '123e99999'].map((num) => secretCase(`secret field ${num.length > 20 ? `${num.slice(0, 8)}…` : num}`, (d) => `{"data":{"n":${d}}}`, num, bad)),
  secretCase('1e400 nested in an object', dataBody, '{"a":{"b":{"c":1e400}}}', bad),
  secretCase('-1e400 nested in an array', dataBody, '{"a":[1,2,[3,-1e400]]}', bad),
  secretCase('1e309 in an array of objects', dataBody, '{"a":[{"x":1},{"y":1e309}]}', bad),
  secretCase('1e400 beside 1,000 valid fields', dataBody, JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, i]))).replace(/}$/, ',"inf":1e400}'), bad),
  { name: 'key config: min_decryption_version 1e400', req: () => asRoot({ method: 'POST', path: '/v1/keys/enc/config', raw: '{"min_decryption_version":1e400}' }), ...bad },
  { name: 'secret metadata: max_versions 1e400', req: () => asRoot({ method: 'PUT', path: '/v1/secret-metadata/app/existing', raw: '{"max_versions":1e400}' }), ...bad },
  { name: 'secret put: cas 1e400', req: () => asRoot({ method: 'PUT', path: '/v1/secrets/app/existing', raw: '{"data":{"v":2},"cas":1e400}' }), ...bad },
]);

// ---------------------------------------------------------------------------------------------
// 3. UTF-8 and charset

const utf8Body = (bytes: number[]) => Buffer.concat([Buffer.from('{"data":{"s":"a'), Buffer.from(bytes), Buffer.from('b"}}')]);
const INVALID_UTF8: Array<[string, number[]]> = [
  ['overlong "/" (C0 AF)', [0xc0, 0xaf]],
  ['overlong NUL (C0 80)', [0xc0, 0x80]],
  ['overlong 3-byte "/" (E0 80 AF)', [0xe0, 0x80, 0xaf]],
  ['overlong 4-byte "/" (F0 80 80 AF)', [0xf0, 0x80, 0x80, 0xaf]],
  ['lone high surrogate U+D800 (ED A0 80)', [0xed, 0xa0, 0x80]],
  ['lone low surrogate U+DFFF (ED BF BF)', [0xed, 0xbf, 0xbf]],
  ['CESU-8 surrogate pair (ED A0 BD ED B8 80)', [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]],
  ['truncated 2-byte sequence (C3)', [0xc3]],
  ['truncated 3-byte sequence (E2 82)', [0xe2, 0x82]],
  ['truncated 4-byte sequence (F0 9F 98)', [0xf0, 0x9f, 0x98]],
  ['lone continuation byte (80)', [0x80]],
  ['FE and FF', [0xfe, 0xff]],
  ['code point above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
  ['5-byte form (F8 88 80 80 80)', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['latin1 "é" (E9)', [0xe9]],
];

describe('UTF-8: valid multi-byte text is accepted', () => {
  it('"é", "€", "😀" and U+10FFFF round-trip', async () => {
    const path = fresh('app/utf8-ok');
    const s = 'é € 😀 \u{10FFFF}';
    await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, raw: Buffer.from(`{"data":{"s":"${s}"}}`, 'utf8') }));
    assert.equal((await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }))).data.s, s);
  });
});

describe('UTF-8: a byte order mark', () => {
  it('a leading BOM is ignored (RFC 8259 §8.1 allows it): 200, and the data reads back without it', async () => {
    const path = fresh('app/bom');
    await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, raw: Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), Buffer.from('{"data":{"v":1}}')]) }));
    assert.deepEqual((await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }))).data, { v: 1 });
  });
});

table('invalid UTF-8', [
  secretCase('a BOM after leading whitespace (only a leading one is ignored)', () => '', '', bad, { raw: Buffer.concat([Buffer.from(' '), Buffer.of(0xef, 0xbb, 0xbf), Buffer.from('{"data":{"v":1}}')]) }),
  ...INVALID_UTF8.map(([what, bytes]) => secretCase(`secret value: ${what}`, () => '', '', bad, { raw: utf8Body(bytes) })),
  secretCase('in a field name (C0 AF)', () => '', '', bad, { raw: Buffer.concat([Buffer.from('{"data":{"k'), Buffer.of(0xc0, 0xaf), Buffer.from('":1}}')]) }),
  secretCase('truncated at the very end of the body (E2 82)', () => '', '', bad, { raw: Buffer.concat([Buffer.from('{"data":{"k":1}}'), Buffer.of(0xe2, 0x82)]) }),
  { name: 'key encrypt: lone surrogate in the context', req: () => asRoot({ method: 'POST', path: '/v1/keys/enc/encrypt', raw: Buffer.concat([Buffer.from(`{"plaintext":"${b64('x')}","context":"`), Buffer.of(0xed, 0xa0, 0x80), Buffer.from('"}')]) }), ...bad },
  { name: 'policy put: overlong in a rule path', req: () => asRoot({ method: 'PUT', path: '/v1/policies/utf', raw: Buffer.concat([Buffer.from('{"rules":[{"path":"secrets/'), Buffer.of(0xc0, 0xaf), Buffer.from('x","capabilities":["read"]}]}')]) }), ...bad, absent: '/v1/policies/utf' },
  { name: 'role put: truncated sequence in a namespace', req: () => asRoot({ method: 'PUT', path: '/v1/auth/kubernetes/roles/utf', raw: Buffer.concat([Buffer.from('{"bound_namespaces":["'), Buffer.of(0xf0, 0x9f, 0x98), Buffer.from('"],"bound_service_accounts":["b"],"policies":["present"]}')]) }), ...bad, absent: '/v1/auth/kubernetes/roles/utf' },
]);

describe('charset: UTF-8 spelled any way is accepted', () => {
  for (const contentType of ['application/json; charset=utf-8', 'application/json; charset=UTF-8', 'application/json;charset="utf-8"', 'Application/JSON; Charset="UTF-8"', 'application/json; charset=utf8']) {
    it(contentType, async () => {
      const path = fresh('app/charset-ok');
      await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, json: { data: { v: 1 } }, contentType }));
      assert.equal(await status(`/v1/secrets/${path}`), 200);
    });
  }
});

const unsupported = { status: 415, code: 'ERR_UNSUPPORTED_MEDIA_TYPE' };
table('charset: anything else is 415', [
  ...['latin1', 'ISO-8859-1', 'utf-16', 'UTF-16LE', 'us-ascii', 'windows-1252', '"latin1"', 'utf-8x', '', 'utf-8; charset=latin1'].map((charset) =>
    secretCase(`charset=${charset || '(empty)'}`, dataBody, '{"v":1}', unsupported, { contentType: `application/json; charset=${charset}` })),
  secretCase('UTF-16 body labelled utf-16', () => '', '', unsupported, { raw: Buffer.from('{"data":{"v":1}}', 'utf16le'), contentType: 'application/json; charset=utf-16' }),
  secretCase('text/plain', dataBody, '{"v":1}', unsupported, { contentType: 'text/plain' }),
  secretCase('text/plain; charset=utf-8', dataBody, '{"v":1}', unsupported, { contentType: 'text/plain; charset=utf-8' }),
  secretCase('no content-type', dataBody, '{"v":1}', unsupported, { contentType: null }),
  secretCase('application/x-www-form-urlencoded', () => 'data=1', '', unsupported, { contentType: 'application/x-www-form-urlencoded' }),
]);

describe('content coding: identity is accepted', () => {
  it('Content-Encoding: identity', async () => {
    const path = fresh('app/coding-ok');
    await ok(asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, json: { data: { v: 1 } }, headers: { 'content-encoding': 'identity' } }));
    assert.equal(await status(`/v1/secrets/${path}`), 200);
  });
});

// keyhold decodes no content coding: a body labelled with one was read as plain JSON regardless
// (a plain body labelled gzip was stored; a gzipped one was "not valid UTF-8"). RFC 9110 §15.5.16: 415.
table('content coding: any other is 415', [
  secretCase('gzip, with a gzipped body', () => '', '', unsupported, { raw: gzipSync('{"data":{"v":1}}'), headers: { 'content-encoding': 'gzip' } }),
  ...['gzip', 'x-gzip', 'deflate', 'br', 'zstd', 'GZIP', 'identity, gzip', 'gzip, identity', 'compress'].map((coding) =>
    secretCase(`${coding}, with a plain body (a label that would be ignored)`, dataBody, '{"v":1}', unsupported, { headers: { 'content-encoding': coding } })),
  { name: 'role put with Content-Encoding: gzip and a plain body', req: () => asRoot({ method: 'PUT', path: '/v1/auth/kubernetes/roles/coded', json: { bound_namespaces: ['a'], bound_service_accounts: ['b'], policies: ['present'] }, headers: { 'content-encoding': 'gzip' } }), ...unsupported, absent: '/v1/auth/kubernetes/roles/coded' },
]);

/** A raw chunked PUT of `body` with `Transfer-Encoding: coding`, answered and closed. */
async function chunkedPut(path: string, coding: string, body: Buffer): Promise<{ status: number; body: any }> {
  const head = `PUT ${path} HTTP/1.1\r\nHost: keyhold\r\nAuthorization: Bearer ${root}\r\nContent-Type: application/json\r\nTransfer-Encoding: ${coding}\r\nConnection: close\r\n\r\n`;
  return parseRawResponse(await exchange(addr(), Buffer.concat([Buffer.from(`${head}${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')])));
}

describe('transfer coding: only chunked', () => {
  it('Transfer-Encoding: chunked (any case) is accepted', async () => {
    for (const coding of ['chunked', 'Chunked']) {
      const path = fresh('app/te-ok');
      const res = await chunkedPut(`/v1/secrets/${path}`, coding, Buffer.from('{"data":{"v":1}}'));
      assert.equal(res.status, 200, `${coding}: ${JSON.stringify(res.body)}`);
      assert.equal(await status(`/v1/secrets/${path}`), 200);
    }
  });
  // Node undoes only `chunked`: the body of `gzip, chunked` reached keyhold still gzip-coded, and a
  // plain body labelled so was stored (200).
  for (const [coding, body] of [
    ['gzip, chunked', gzipSync('{"data":{"v":1}}')],
    ['gzip, chunked', Buffer.from('{"data":{"v":1}}')],
    ['deflate, chunked', Buffer.from('{"data":{"v":1}}')],
    ['x-custom, chunked', Buffer.from('{"data":{"v":1}}')],
  ] as const) {
    it(`Transfer-Encoding: ${coding} with a ${body[0] === 0x1f ? 'gzipped' : 'plain'} body → 400 ERR_BAD_REQUEST, nothing stored`, async () => {
      const path = fresh('app/te');
      const res = await chunkedPut(`/v1/secrets/${path}`, coding, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body?.error?.code, 'ERR_BAD_REQUEST');
      assert.equal(await status(`/v1/secrets/${path}`), 404);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 1b. Wide and long input inside the limits never reaches a 5xx

describe('wide and long secret data within the body limit is stored and read back', () => {
  for (const [what, data] of [
    ['an array of 200,000 numbers', { a: Array.from({ length: 200_000 }, (_, i) => i % 10) }],
    ['a nested object with 50,000 fields', { a: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, 1])) }],
    ['a nested field name of 500,000 characters', { a: { ['k'.repeat(500_000)]: 1 } }],
    ['a string of 900,000 characters', { a: 'x'.repeat(900_000) }],
    ['1,024 fields each 31 levels deep', Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [`f${i}`, JSON.parse(objects(31))]))],
  ] as const) {
    it(what, async () => {
      const path = fresh('app/wide');
      const res = await request(addr(), asRoot({ method: 'PUT', path: `/v1/secrets/${path}`, json: { data } }));
      assertOk(res, 200, what);
      const back = await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }));
      assert.deepEqual(back.data, data);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 4. Slow clients

const putHead = (path: string, length: number, token?: string, contentType = 'application/json') =>
  `PUT ${path} HTTP/1.1\r\nHost: keyhold\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`;

describe('slow clients', () => {
  it('an authenticated PUT whose body trickles in is answered 408 ERR_REQUEST_TIMEOUT and closed within the request timeout; nothing is stored', async () => {
    const path = fresh('app/trickle');
    const r = await trickle(addr(), putHead(`/v1/secrets/${path}`, 10_000, root), { everyMs: 200, giveUpMs: REQUEST_TIMEOUT_MS + 10_000, drip: '{' });
    assert.ok(r.closedAfterMs !== null, `still open after ${REQUEST_TIMEOUT_MS + 10_000} ms (${r.bytesSent} bytes sent)`);
    assert.ok(r.closedAfterMs <= REQUEST_TIMEOUT_MS + SLACK_MS, `closed after ${r.closedAfterMs} ms`);
    assert.ok(r.closedAfterMs >= REQUEST_TIMEOUT_MS - 100, `closed too early: ${r.closedAfterMs} ms`);
    const res = parseRawResponse(r.response);
    assert.equal(res.status, 408, r.response);
    assert.equal(res.body?.error?.code, 'ERR_REQUEST_TIMEOUT', r.response);
    assert.equal(await status(`/v1/secrets/${path}`), 404);
  });

  it('an unauthenticated PUT with a body still coming gets its 401 at once, then the connection is closed while the client keeps trickling', async () => {
    const path = fresh('app/trickle');
    const r = await trickle(addr(), putHead(`/v1/secrets/${path}`, 10_000), { everyMs: 100, giveUpMs: REQUEST_TIMEOUT_MS + 10_000, drip: '{' });
    const res = parseRawResponse(r.response);
    assert.equal(res.status, 401, r.response);
    assert.equal(res.body?.error?.code, 'ERR_UNAUTHENTICATED');
    assert.match(res.headers, /^connection: close\r?$/im);
    assert.ok(r.respondedAfterMs !== null && r.respondedAfterMs < 1000, `answered after ${r.respondedAfterMs} ms`);
    assert.ok(r.closedAfterMs !== null, 'still open');
    // Well before the request timeout: the close follows the answer, not the timer.
    assert.ok(r.closedAfterMs - r.respondedAfterMs < 500, `closed ${r.closedAfterMs - r.respondedAfterMs} ms after the 401`);
    assert.equal(await status(`/v1/secrets/${path}`), 404);
  });

  for (const [what, head, code, statusCode] of [
    ['a token that does not exist', putHead('/v1/secrets/app/trickle-x', 10_000, 'not-a-token'), 'ERR_UNAUTHENTICATED', 401],
    ['an unsupported media type', putHead('/v1/secrets/app/trickle-x', 10_000, 'ROOT', 'application/xml'), 'ERR_UNSUPPORTED_MEDIA_TYPE', 415],
    ['a declared length over the body limit', putHead('/v1/secrets/app/trickle-x', 2 * 1024 * 1024, 'ROOT'), 'ERR_PAYLOAD_TOO_LARGE', 413],
  ] as const) {
    it(`a request refused before its body (${what}) is answered ${statusCode} and closed while the body still trickles`, async () => {
      const r = await trickle(addr(), head.replace('ROOT', root), { everyMs: 100, giveUpMs: REQUEST_TIMEOUT_MS + 10_000, drip: '{' });
      const res = parseRawResponse(r.response);
      assert.equal(res.status, statusCode, r.response);
      assert.equal(res.body?.error?.code, code);
      assert.ok(r.respondedAfterMs !== null && r.closedAfterMs !== null, 'answered and closed');
      assert.ok(r.closedAfterMs - r.respondedAfterMs < 500, `closed ${r.closedAfterMs - r.respondedAfterMs} ms after the answer`);
      assert.ok(r.closedAfterMs < REQUEST_TIMEOUT_MS, `closed after ${r.closedAfterMs} ms: by the timer, not the refusal`);
      assert.equal(await status('/v1/secrets/app/trickle-x'), 404);
    });
  }

  it('headers that trickle in are answered 408 ERR_REQUEST_TIMEOUT and closed within the headers timeout', async () => {
    const r = await trickle(addr(), 'GET /v1/sys/health HTTP/1.1\r\nHost: keyhold\r\n', { everyMs: 100, giveUpMs: HEADERS_TIMEOUT_MS + 10_000, drip: 'X' });
    assert.ok(r.closedAfterMs !== null && r.closedAfterMs <= HEADERS_TIMEOUT_MS + SLACK_MS, `closed after ${r.closedAfterMs} ms`);
    const res = parseRawResponse(r.response);
    assert.equal(res.status, 408, r.response);
    assert.equal(res.body?.error?.code, 'ERR_REQUEST_TIMEOUT');
    assert.equal(typeof res.body?.request_id, 'string');
  });

  for (const [what, head, statusCode, code] of [
    ['request headers over 16 KiB', `GET /v1/sys/health HTTP/1.1\r\nHost: keyhold\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'ERR_HEADERS_TOO_LARGE'],
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'ERR_BAD_REQUEST'],
  ] as const) {
    it(`${what} → ${statusCode} ${code} in keyhold's error shape, then closed`, async () => {
      const r = await trickle(addr(), head, { everyMs: 60_000, giveUpMs: 5_000 });
      assert.ok(r.closedAfterMs !== null, 'still open');
      const res = parseRawResponse(r.response);
      assert.equal(res.status, statusCode, r.response);
      assert.equal(res.body?.error?.code, code, r.response);
      assert.deepEqual(Object.keys(res.body ?? {}).sort(), ['error', 'request_id']);
    });
  }

  it('a body sent at a normal pace is unaffected, and the connection is kept alive for the next request', async () => {
    const body = JSON.stringify({ data: { v: 'paced' } });
    const path = fresh('app/paced');
    // A second request on the same connection (pipelined; answered in order) shows it was kept alive.
    const r = await trickle(addr(), `${putHead(`/v1/secrets/${path}`, body.length, root)}${body}GET /v1/sys/health HTTP/1.1\r\nHost: keyhold\r\nConnection: close\r\n\r\n`, { everyMs: 60_000, giveUpMs: 5_000 });
    const responses = r.response.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2, r.response);
    assert.equal(parseRawResponse(responses[0] as string).status, 200, r.response);
    assert.equal(parseRawResponse(responses[1] as string).status, 200, r.response);
    assert.deepEqual((await ok(asRoot({ method: 'GET', path: `/v1/secrets/${path}` }))).data, { v: 'paced' });
  });

  it('the config refuses a headers timeout longer than the request timeout (ERR_CONFIG)', () => {
    assert.throws(() => validateConfig(devServerConfig(dataDir, { api: { headersTimeoutMs: 5000, requestTimeoutMs: 4000 } }), 'test'), (err) => isKeyholdError(err, 'ERR_CONFIG'));
    assert.doesNotThrow(() => validateConfig(devServerConfig(dataDir, { api: { headersTimeoutMs: 4000, requestTimeoutMs: 4000 } }), 'test'));
  });
});

// ---------------------------------------------------------------------------------------------
// 5. No existence oracle in refusals

interface Probe {
  name: string;
  /** The request for a path that exists, and for one that does not. */
  existing: () => RawRequest;
  missing: () => RawRequest;
}
const withToken = (token: () => string, method: string, path: string, json?: unknown) => (): RawRequest => ({ method, path, token: token(), ...(json === undefined ? {} : { json }) });

function probes(token: () => string): Probe[] {
  const pair = (name: string, method: string, existing: string, missing: string, json?: unknown): Probe =>
    ({ name, existing: withToken(token, method, existing, json), missing: withToken(token, method, missing, json) });
  return [
    pair('secret put', 'PUT', '/v1/secrets/app/existing', '/v1/secrets/app/missing', { data: { v: 9 } }),
    pair('secret put with cas', 'PUT', '/v1/secrets/app/existing', '/v1/secrets/app/missing', { data: { v: 9 }, cas: 1 }),
    pair('secret delete', 'DELETE', '/v1/secrets/app/existing', '/v1/secrets/app/missing'),
    pair('secret undelete', 'POST', '/v1/secret-undelete/app/existing', '/v1/secret-undelete/app/missing', { versions: [1] }),
    pair('secret destroy', 'POST', '/v1/secret-destroy/app/existing', '/v1/secret-destroy/app/missing', { versions: [1] }),
    pair('secret metadata write', 'PUT', '/v1/secret-metadata/app/existing', '/v1/secret-metadata/app/missing', { max_versions: 3 }),
    pair('secret metadata delete', 'DELETE', '/v1/secret-metadata/app/existing', '/v1/secret-metadata/app/missing'),
    pair('key config', 'POST', '/v1/keys/enc/config', '/v1/keys/missing/config', { deletion_allowed: true }),
    pair('key rotate', 'POST', '/v1/keys/enc/rotate', '/v1/keys/missing/rotate'),
    pair('key delete', 'DELETE', '/v1/keys/enc', '/v1/keys/missing'),
    pair('key encrypt', 'POST', '/v1/keys/enc/encrypt', '/v1/keys/missing/encrypt', { plaintext: b64('x') }),
    pair('policy write', 'PUT', '/v1/policies/present', '/v1/policies/missing', { rules: [] }),
    pair('policy delete', 'DELETE', '/v1/policies/present', '/v1/policies/missing'),
    pair('role write', 'PUT', '/v1/auth/kubernetes/roles/present', '/v1/auth/kubernetes/roles/missing', { bound_namespaces: ['a'], bound_service_accounts: ['b'], policies: ['present'] }),
    pair('role delete', 'DELETE', '/v1/auth/kubernetes/roles/present', '/v1/auth/kubernetes/roles/missing'),
  ];
}

/** A refusal with the path's own name taken out, to compare the existing path's with the missing one's. */
const shape = (res: RawResponse) => ({ status: res.status, code: res.body?.error?.code, message: String(res.body?.error?.message).replace(/existing|missing|present|enc/g, '<path>') });

for (const [who, token] of [['a token holding nothing on the path', () => tokens.none], ['a read-only token', () => tokens.readOnly]] as const) {
  describe(`existence oracle: ${who} gets the same 403 for an existing and a missing path`, () => {
    for (const probe of probes(token)) {
      it(probe.name, async () => {
        const existing = await request(addr(), probe.existing());
        const missing = await request(addr(), probe.missing());
        assertError(existing, 403, 'ERR_PERMISSION_DENIED', `${probe.name} (existing)`);
        assertError(missing, 403, 'ERR_PERMISSION_DENIED', `${probe.name} (missing)`);
        assert.deepEqual(shape(existing), shape(missing));
      });
    }
    it('and nothing was created or changed', async () => {
      assert.equal(await status('/v1/secrets/app/missing'), 404);
      assert.equal((await ok(asRoot({ method: 'GET', path: '/v1/secrets/app/existing' }))).data.v, 1);
      assert.equal(await status('/v1/policies/missing'), 404);
      assert.equal(await status('/v1/auth/kubernetes/roles/missing'), 404);
      assert.equal(await status('/v1/keys/enc'), 200);
    });
  });
}

describe('existence oracle: a secret write needs create or update, and only a caller holding exactly one learns which (as in Vault)', () => {
  it('create+update: writes both an existing and a new path', async () => {
    await ok({ method: 'PUT', path: '/v1/secrets/app/existing', token: tokens.both, json: { data: { v: 1 } } });
    await ok({ method: 'PUT', path: '/v1/secrets/app/both-new', token: tokens.both, json: { data: { v: 1 } } });
  });
  it('create only: creates a new path; an existing one is refused as "update"', async () => {
    await ok({ method: 'PUT', path: '/v1/secrets/app/create-new', token: tokens.createOnly, json: { data: { v: 1 } } });
    const res = await request(addr(), { method: 'PUT', path: '/v1/secrets/app/existing', token: tokens.createOnly, json: { data: { v: 2 } } });
    assertError(res, 403, 'ERR_PERMISSION_DENIED');
    assert.match(res.body.error.message, /update on secrets\/app\/existing/);
  });
  it('update only: updates an existing path; a new one is refused as "create" and not created', async () => {
    await ok({ method: 'PUT', path: '/v1/secrets/app/existing', token: tokens.updateOnly, json: { data: { v: 1 } } });
    const res = await request(addr(), { method: 'PUT', path: '/v1/secrets/app/update-new', token: tokens.updateOnly, json: { data: { v: 1 } } });
    assertError(res, 403, 'ERR_PERMISSION_DENIED');
    assert.match(res.body.error.message, /create on secrets\/app\/update-new/);
    assert.equal(await status('/v1/secrets/app/update-new'), 404);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Concurrent read-modify-writes

/** Labels of the HSM key objects on the server's token, read by pkcs11-tool (another process). */
function keyObjectLabels(): string[] {
  const listed = pkcs11ToolListObjects(dataDir);
  assert.equal(listed.status, 0, listed.stderr);
  return parseListedObjects(listed.stdout).map((o) => o.label ?? '').filter((l) => l.startsWith('keyhold/key/'));
}

describe('concurrent writes without cas all succeed', () => {
  for (const protection of ['hsm', 'wrapped'] as const) {
    it(`10 concurrent rotations of one ${protection} key → 10 × 200, each with its own new version; every version works; no HSM object leaks`, async () => {
      const name = `spin-${protection}`;
      await ok(asRoot({ method: 'POST', path: '/v1/keys', json: { name, type: 'aes256-gcm', protection } }));
      const objectsBefore = keyObjectLabels().length;
      const results = await Promise.all(Array.from({ length: 10 }, () => request(addr(), asRoot({ method: 'POST', path: `/v1/keys/${name}/rotate` }))));
      for (const res of results) assertOk(res, 200, 'rotation');
      const versions = results.map((res) => res.body.latest_version as number).sort((a, b) => a - b);
      assert.deepEqual(versions, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      const key = await ok(asRoot({ method: 'GET', path: `/v1/keys/${name}` }));
      assert.equal(key.latest_version, 11);
      assert.deepEqual(key.versions.map((v: { version: number }) => v.version), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      assert.equal(keyObjectLabels().length - objectsBefore, protection === 'hsm' ? 10 : 0, 'one HSM object per committed version, none more');
      // The newest version encrypts and decrypts (its material is bound to the version it was committed as).
      const enc = await ok(asRoot({ method: 'POST', path: `/v1/keys/${name}/encrypt`, json: { plaintext: b64('spun') } }));
      assert.equal(enc.version, 11);
      assert.equal((await ok(asRoot({ method: 'POST', path: `/v1/keys/${name}/decrypt`, json: { ciphertext: enc.ciphertext } }))).plaintext, b64('spun'));
    });
  }

  it('10 concurrent key config updates → 10 × 200, the last one written holds', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => request(addr(), asRoot({ method: 'POST', path: '/v1/keys/spin-wrapped/config', json: { min_decryption_version: i + 1 } }))));
    for (const res of results) assertOk(res, 200, 'config');
    const final = (await ok(asRoot({ method: 'GET', path: '/v1/keys/spin-wrapped' }))).min_decryption_version as number;
    assert.ok(results.some((res) => res.body.min_decryption_version === final));
  });

  it('10 concurrent secret writes without cas → 10 × 200 with versions 1…10', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => request(addr(), asRoot({ method: 'PUT', path: '/v1/secrets/app/spin', json: { data: { i } } }))));
    for (const res of results) assertOk(res, 200, 'secret write');
    assert.deepEqual(results.map((res) => res.body.version as number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('10 concurrent secret metadata writes → 10 × 204', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => request(addr(), asRoot({ method: 'PUT', path: '/v1/secret-metadata/app/spin', json: { max_versions: 20 + i } }))));
    for (const res of results) assertOk(res, 204, 'metadata write');
  });

  it('10 concurrent policy writes → 10 × 200', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => request(addr(), asRoot({ method: 'PUT', path: '/v1/policies/spin', json: { rules: [{ path: `secrets/${i}`, capabilities: ['read'] }] } }))));
    for (const res of results) assertOk(res, 200, 'policy write');
  });

  it('an explicit cas still conflicts: 10 concurrent writes with the same cas → one 200, nine 409 ERR_CAS_MISMATCH', async () => {
    const current = (await ok(asRoot({ method: 'GET', path: '/v1/secrets/app/spin' }))).version as number;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => request(addr(), asRoot({ method: 'PUT', path: '/v1/secrets/app/spin', json: { data: { cas: i }, cas: current } }))));
    assert.equal(results.filter((res) => res.status === 200).length, 1, results.map((r) => r.status).join(','));
    for (const res of results.filter((r) => r.status !== 200)) assertError(res, 409, 'ERR_CAS_MISMATCH');
    assert.equal((await ok(asRoot({ method: 'GET', path: '/v1/secrets/app/spin' }))).version, current + 1);
  });
});
