/**
 * Seeded HTTP fuzzing of a real `keyhold dev` server. Routes come from the server's own OpenAPI
 * document; bodies are mutations of valid bodies. No response may be a 5xx (503 included), every
 * refusal must carry `{ error: { code: ERR_* } }`, and the server must be alive and healthy at the end.
 *
 * Replay a run with KEYHOLD_FUZZ_SEED=<seed> (printed at the start); KEYHOLD_FUZZ_REQUESTS changes
 * the count (default 10,000). Request i depends only on (seed, i), not on timing or responses.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startDev, type DevServer } from '../../helpers/server.js';
import { assertHealthy, assertOk, b64, ERROR_CODE, joinCiphertext, openApiOperations, request, splitCiphertext, type RawRequest, type RawResponse } from './api-helpers.js';
import { flipBit } from '../../helpers/bytes.js';

const SEED = process.env.KEYHOLD_FUZZ_SEED !== undefined ? Number(process.env.KEYHOLD_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const TOTAL = Number(process.env.KEYHOLD_FUZZ_REQUESTS ?? 10_000);
const CONCURRENCY = 16;
const HEALTH_EVERY = 500;
const BODY_LIMIT = 1024 * 1024;

// ---------------------------------------------------------------- PRNG (sfc32 seeded by splitmix32)

function splitmix32(a: number): () => number {
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return ((t ^ (t >>> 15)) >>> 0);
  };
}

class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    const s = splitmix32(seed);
    this.a = s(); this.b = s(); this.c = s(); this.d = s();
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  float(): number { return this.u32() / 2 ** 32; }
  int(n: number): number { return Math.floor(this.float() * n); }
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  chance(p: number): boolean { return this.float() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)] as T; }
  bytes(n: number): Buffer { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = this.int(256); return b; }
  /** Weighted choice: [[weight, value], ...]. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
    const total = choices.reduce((s, [w]) => s + w, 0);
    let x = this.float() * total;
    for (const [w, v] of choices) { if ((x -= w) < 0) return v; }
    return (choices[choices.length - 1] as readonly [number, T])[1];
  }
}

// ---------------------------------------------------------------- fixtures

interface Fixtures {
  root: string;
  limited: string;
  noPolicies: string;
  disposable: string[];
  keys: string[];
  secrets: string[];
  policies: string[];
  ciphertexts: Array<{ key: string; ciphertext: string; context?: string }>;
  signatures: Array<{ key: string; signature: string; input: string }>;
}

let server: DevServer;
let fx: Fixtures;
let operations: Array<[string, string]> = [];

const KEY_SPECS = [
  ['fz-aes-hsm', 'aes256-gcm', 'hsm'], ['fz-aes-w', 'aes256-gcm', 'wrapped'], ['fz-ec', 'ec-p256', 'wrapped'],
  ['fz-hmac', 'hmac-sha256', 'hsm'], ['fz-rsa', 'rsa-2048', 'wrapped'],
] as const;
const CONTEXT = b64('fuzz-context');
// Fast key types only: key creation runs on the server's event loop (RSA-4096 generation takes seconds).
const CREATE_TYPES = ['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384'];

before(async () => {
  server = await startDev();
  const root = server.rootToken;
  const ok = async (r: RawRequest) => {
    const res = await request(server.address, { ...r, token: r.token ?? root });
    assertOk(res, res.status === 204 ? 204 : 200, `${r.method} ${r.path}`);
    return res.body;
  };
  for (const [name, type, protection] of KEY_SPECS) await ok({ method: 'POST', path: '/v1/keys', json: { name, type, protection } });
  const secrets = ['fz/a', 'fz/b/c', 'top', 'fz/deep/er/path'];
  for (const path of secrets) await ok({ method: 'PUT', path: `/v1/secrets/${path}`, json: { data: { user: 'u', password: 'p', n: 1 } } });
  await ok({ method: 'PUT', path: '/v1/policies/fz-limited', json: { rules: [
    { path: 'secrets/fz/*', capabilities: ['read', 'create', 'update', 'list'] },
    { path: 'keys/fz-aes-w', capabilities: ['encrypt', 'decrypt'] },
    { path: 'keys/fz-ec', capabilities: ['sign', 'verify'] },
  ] } });
  await ok({ method: 'PUT', path: '/v1/policies/fz-other', json: { rules: [{ path: 'secrets/top', capabilities: ['read', 'deny'] }] } });
  const limited = (await ok({ method: 'POST', path: '/v1/tokens', json: { policies: ['fz-limited'] } })).token;
  const noPolicies = (await ok({ method: 'POST', path: '/v1/tokens', json: { policies: [] } })).token;
  const disposable: string[] = [];
  for (let i = 0; i < 24; i++) disposable.push((await ok({ method: 'POST', path: '/v1/tokens', json: { policies: ['fz-limited'], ttl: '1h' } })).token);
  const ciphertexts: Fixtures['ciphertexts'] = [];
  for (const key of ['fz-aes-hsm', 'fz-aes-w']) {
    for (const context of [CONTEXT, undefined]) {
      const ct = (await ok({ method: 'POST', path: `/v1/keys/${key}/encrypt`, json: { plaintext: b64('fuzz plaintext'), ...(context ? { context } : {}) } })).ciphertext;
      ciphertexts.push({ key, ciphertext: ct, ...(context ? { context } : {}) });
    }
    const dk = await ok({ method: 'POST', path: `/v1/keys/${key}/datakey`, json: { context: CONTEXT } });
    ciphertexts.push({ key, ciphertext: dk.ciphertext, context: CONTEXT });
  }
  ciphertexts.push({ key: 'fz-rsa', ciphertext: (await ok({ method: 'POST', path: '/v1/keys/fz-rsa/encrypt', json: { plaintext: b64('rsa') } })).ciphertext });
  const signatures: Fixtures['signatures'] = [];
  for (const key of ['fz-ec', 'fz-hmac', 'fz-rsa']) {
    const input = b64(`sign me ${key}`);
    signatures.push({ key, input, signature: (await ok({ method: 'POST', path: `/v1/keys/${key}/sign`, json: { input } })).signature });
  }
  fx = {
    root, limited, noPolicies, disposable, keys: KEY_SPECS.map(([n]) => n), secrets,
    policies: ['fz-limited', 'fz-other'], ciphertexts, signatures,
  };
  operations = await openApiOperations(server.address);
});

after(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------- generators

const JUNK_SEGMENTS = ['..', '.', '%2e%2e', '%2E', '%2f', '%2F..%2F', '%00', '%ZZ', '%', '~', '-', '_', 'a.b', '%C3%A9', '%F0%9F%94%91', '%E2%80%AE',
  '%FF', '%C0%AE%C0%AE', 'CON', 'null', 'undefined', '__proto__', 'constructor', 'root', '*', '+', '%2A', 'a%20b', '%0d%0a', 'sys', 'keys', 'v1'];

function alnum(rng: Rng, n: number): string {
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-';
  let s = '';
  for (let i = 0; i < n; i++) s += chars[rng.int(chars.length)];
  return s;
}

function randomUnicode(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += rng.weighted<() => string>([
      [5, () => String.fromCharCode(rng.range(0x20, 0x7e))],
      [1, () => String.fromCharCode(rng.range(0, 0x1f))],
      [1, () => '\u0000'],
      [2, () => String.fromCodePoint(rng.range(0xa0, 0x2fff))],
      [1, () => String.fromCodePoint(rng.range(0x1f300, 0x1faff))],
      [1, () => String.fromCharCode(rng.range(0xd800, 0xdfff))], // lone surrogate
      [1, () => rng.pick(['\u202e', '\ufeff', '\u200b', '"', '\\', '/', '%', '\n'])],
    ])();
  }
  return s;
}

/** Percent-encodes everything but unreserved characters (lone surrogates become U+FFFD's bytes). */
function pctEncode(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._~-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function junkSegment(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.pick(JUNK_SEGMENTS)],
    [4, () => alnum(rng, rng.range(1, 24))],
    [1, () => alnum(rng, rng.range(100, 300))],
    [2, () => pctEncode(randomUnicode(rng, rng.range(1, 12)))],
    [1, () => ''],
  ])();
}

function keyName(rng: Rng): string {
  return rng.weighted<() => string>([
    [6, () => rng.pick(fx.keys)],
    [1, () => `fz-new-${rng.int(20)}`],
    [1, () => 'nope'],
    [2, () => junkSegment(rng)],
  ])();
}

function secretPath(rng: Rng): string {
  return rng.weighted<() => string>([
    [5, () => rng.pick(fx.secrets)],
    [2, () => `fz/${alnum(rng, rng.range(1, 10))}`],
    [1, () => `${rng.pick(fx.secrets)}/`],
    [3, () => Array.from({ length: rng.range(1, 5) }, () => junkSegment(rng)).join('/')],
    [1, () => `fz/${rng.pick(['..', '.', '', '%2e%2e'])}/a`],
  ])();
}

function policyName(rng: Rng): string {
  return rng.weighted<() => string>([
    [3, () => rng.pick(fx.policies)],
    [1, () => `fz-p${rng.int(5)}`],
    [1, () => 'root'],
    [2, () => junkSegment(rng)],
  ])();
}

function base64ish(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.bytes(rng.range(0, 64)).toString('base64')],
    [1, () => rng.bytes(rng.range(1000, 20000)).toString('base64')],
    [2, () => rng.pick(['abc', '%%%', 'ab=c', '=', '====', 'a', 'aGk', 'aGk===', 'aGk=\n', ' aGk=', 'aGk=aGk=', '-_-_', '\u0000'])],
    [1, () => randomUnicode(rng, rng.range(1, 20))],
  ])();
}

function ciphertextish(rng: Rng, key: string): string {
  const own = fx.ciphertexts.filter((c) => c.key === key);
  const any = rng.pick(fx.ciphertexts).ciphertext;
  const base = own.length > 0 ? rng.pick(own).ciphertext : any;
  return rng.weighted<() => string>([
    [3, () => base],
    [6, () => { const p = splitCiphertext(base); return joinCiphertext(p.name, p.version, flipBit(p.body, rng.int(p.body.length * 8))); }],
    [2, () => any],
    [1, () => base.replace(':v1:', `:v${rng.pick(['0', '2', '9', '999999999', '1000000000', '-1', 'x'])}:`)],
    [1, () => { const p = splitCiphertext(base); return joinCiphertext(p.name, p.version, p.body.subarray(0, rng.int(p.body.length))); }],
    [1, () => `keyhold:${key}:v1:${base64ish(rng)}`],
    [1, () => randomUnicode(rng, rng.range(0, 40))],
    [1, () => base.replace(/^keyhold:[^:]+:/, `keyhold:${junkSegment(rng)}:`)],
  ])();
}

function signatureish(rng: Rng, key: string): string {
  const own = fx.signatures.find((s) => s.key === key);
  const base = own?.signature ?? rng.pick(fx.signatures).signature;
  return rng.weighted<() => string>([
    [2, () => base],
    [5, () => { const p = splitCiphertext(base); return joinCiphertext(p.name, p.version, flipBit(p.body, rng.int(p.body.length * 8))); }],
    [1, () => rng.pick(fx.signatures).signature],
    [1, () => `keyhold:${key}:v1:${base64ish(rng)}`],
    [1, () => randomUnicode(rng, rng.range(0, 30))],
  ])();
}

/** Any JSON value, with a bias towards the awkward ones. */
function randomValue(rng: Rng, depth = 0): unknown {
  return rng.weighted<() => unknown>([
    [2, () => rng.int(10)],
    [1, () => rng.pick([0, -1, -0, 1.5, 2 ** 31, 2 ** 53, -(2 ** 53), 1e300, -1e300, Number.MAX_SAFE_INTEGER + 2, 5e-324])],
    [1, () => rng.chance(0.5)],
    [1, () => null],
    [2, () => randomUnicode(rng, rng.range(0, 30))],
    [1, () => 'x'.repeat(rng.range(1000, 70_000))],
    [1, () => base64ish(rng)],
    [depth < 4 ? 1 : 0, () => Array.from({ length: rng.range(0, 5) }, () => randomValue(rng, depth + 1))],
    [depth < 4 ? 1 : 0, () => Object.fromEntries(Array.from({ length: rng.range(0, 5) }, () => [randomUnicode(rng, rng.range(0, 8)), randomValue(rng, depth + 1)]))],
    [depth < 1 ? 0.2 : 0, () => { let v: unknown = 1; for (let i = 0; i < rng.range(50, 400); i++) v = rng.chance(0.5) ? [v] : { a: v }; return v; }],
  ])();
}

function secretData(rng: Rng): Record<string, unknown> {
  const n = rng.weighted([[6, rng.range(1, 6)], [1, 0], [1, rng.range(100, 1100)]] as const);
  const data: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) data[rng.chance(0.8) ? alnum(rng, rng.range(1, 12)) : randomUnicode(rng, rng.range(0, 300))] = randomValue(rng);
  return data;
}

/** A valid (or nearly valid) body for the operation, before mutation. */
function validBody(rng: Rng, method: string, template: string, params: { name?: string; path?: string }): Record<string, unknown> | undefined {
  const key = params.name ?? rng.pick(fx.keys);
  const op = `${method} ${template}`;
  switch (op) {
    case 'POST /v1/keys': return { name: keyName(rng), type: rng.pick(CREATE_TYPES), protection: rng.pick(['hsm', 'wrapped']), ...(rng.chance(0.3) ? { deletion_allowed: rng.chance(0.5) } : {}) };
    // Disabling a key or retiring versions makes later crypto requests stop early: kept rare.
    case 'POST /v1/keys/{name}/config': return rng.weighted<Record<string, unknown>>([
      [1, { min_decryption_version: rng.range(1, 3) }], [4, { deletion_allowed: rng.chance(0.5) }], [1, { disabled: rng.chance(0.3) }], [4, { disabled: false }], [2, {}],
    ]);
    case 'POST /v1/keys/{name}/rotate': return undefined;
    case 'POST /v1/keys/{name}/encrypt': return { plaintext: rng.bytes(rng.range(0, 300)).toString('base64'), ...(rng.chance(0.5) ? { context: CONTEXT } : {}) };
    case 'POST /v1/keys/{name}/decrypt':
    case 'POST /v1/keys/{name}/rewrap': {
      const ct = ciphertextish(rng, key);
      const known = fx.ciphertexts.find((c) => c.ciphertext === ct);
      const context = known?.context ?? (rng.chance(0.3) ? rng.pick([CONTEXT, b64('other'), '']) : undefined);
      return { ciphertext: ct, ...(context !== undefined ? { context } : {}) };
    }
    case 'POST /v1/keys/{name}/datakey': return { ...(rng.chance(0.5) ? { bits: rng.pick([128, 256]) } : {}), ...(rng.chance(0.5) ? { plaintext: rng.chance(0.5) } : {}), ...(rng.chance(0.3) ? { context: CONTEXT } : {}) };
    case 'POST /v1/keys/{name}/sign': return { input: rng.bytes(rng.range(0, 200)).toString('base64') };
    case 'POST /v1/keys/{name}/verify': {
      const own = fx.signatures.find((s) => s.key === key);
      return { input: own && rng.chance(0.7) ? own.input : base64ish(rng), signature: signatureish(rng, key) };
    }
    case 'PUT /v1/secrets/{*}': return { data: secretData(rng), ...(rng.chance(0.3) ? { cas: rng.range(0, 4) } : {}) };
    case 'POST /v1/secret-undelete/{*}':
    case 'POST /v1/secret-destroy/{*}': return { versions: Array.from(new Set(Array.from({ length: rng.range(1, 4) }, () => rng.range(1, 6)))) };
    case 'PUT /v1/secret-metadata/{*}': return { ...(rng.chance(0.7) ? { max_versions: rng.range(0, 20) } : {}), ...(rng.chance(0.5) ? { cas_required: rng.chance(0.3) } : {}) };
    case 'PUT /v1/policies/{name}': return { rules: Array.from({ length: rng.range(0, 4) }, () => ({
      path: rng.pick(['secrets/fz/*', 'keys/+', 'secrets/+/db', 'sys/policies/x', `secrets/${alnum(rng, 5)}`, 'keys/fz-aes-w']),
      capabilities: Array.from(new Set(Array.from({ length: rng.range(1, 3) }, () => rng.pick(['read', 'create', 'update', 'delete', 'list', 'encrypt', 'decrypt', 'sign', 'verify', 'rotate', 'deny'])))),
    })) };
    case 'POST /v1/tokens': return {
      policies: Array.from(new Set(Array.from({ length: rng.range(0, 3) }, () => rng.pick(['fz-limited', 'fz-other', 'root', 'nope'])))),
      ...(rng.chance(0.5) ? { ttl: rng.pick([60, '1h', '10m', 3600 * 24]) } : {}),
      ...(rng.chance(0.3) ? { display_name: alnum(rng, rng.range(0, 20)) } : {}),
    };
    default: return undefined;
  }
}

function mutate(rng: Rng, body: Record<string, unknown>): unknown {
  const out: Record<string, unknown> = { ...body };
  const fields = Object.keys(out);
  const rounds = rng.range(1, 3);
  for (let r = 0; r < rounds; r++) {
    rng.weighted<() => void>([
      [3, () => { if (fields.length) delete out[rng.pick(fields)]; }],
      [3, () => { out[rng.pick(['extra', 'version', 'name', 'plaintext', 'ciphertext', 'policies', 'data', '__proto__x', randomUnicode(rng, 6)])] = randomValue(rng); }],
      [6, () => { if (fields.length) out[rng.pick(fields)] = randomValue(rng); }],
      [2, () => { if (fields.length) out[rng.pick(fields)] = base64ish(rng); }],
      [2, () => { if (fields.length) out[rng.pick(fields)] = randomUnicode(rng, rng.range(0, 50)); }],
      [1, () => { if (fields.length) out[rng.pick(fields)] = { nested: randomValue(rng) }; }],
    ])();
  }
  return out;
}

interface Planned {
  index: number;
  req: RawRequest;
  describe: string;
}

/** Request `index` of the run: a pure function of (SEED, index) and the fixtures. */
function plan(index: number): Planned {
  const rng = new Rng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  let method: string;
  let template: string;
  let path: string;
  const params: { name?: string; path?: string } = {};
  if (rng.chance(0.03)) {
    method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    template = '(random)';
    path = '/' + Array.from({ length: rng.range(0, 5) }, () => rng.chance(0.5) ? rng.pick(['v1', 'keys', 'secrets', 'sys', 'tokens', 'policies', 'metrics']) : junkSegment(rng)).join('/');
  } else {
    // Routes whose handlers go deepest (ciphertext and signature parsing, HSM calls) weigh more.
    [method, template] = rng.weighted(operations.map((op) => [/\/(decrypt|rewrap|verify|encrypt|sign|datakey)$/.test(op[1]) ? 3 : 1, op] as const));
    path = template
      .replace('{name}', () => (template.startsWith('/v1/policies') ? policyName(rng) : (params.name = keyName(rng))))
      .replace('{*}', () => (params.path = secretPath(rng)));
  }
  if (rng.chance(0.2)) {
    const query = rng.weighted<() => string>([
      [2, () => `version=${rng.pick(['1', '2', '0', 'abc', '-1', '1e3', '999999999', '99999999999', ''])}`],
      [2, () => `list=${rng.pick(['true', 'false', 'yes', '1', ''])}`],
      [1, () => `versions=${rng.pick(['1', '1,2', '0', '1,,2', 'a', Array.from({ length: 1001 }, (_, i) => i + 1).join(',')])}`],
      [1, () => `${junkSegment(rng)}=${junkSegment(rng)}`],
      [1, () => 'version=1&version=2'],
    ])();
    path += `?${query}`;
  }

  // Body.
  let json: unknown;
  let raw: string | undefined;
  const valid = validBody(rng, method, template, params);
  const wantsBody = method === 'POST' || method === 'PUT';
  if (wantsBody || rng.chance(0.05)) {
    const base = valid ?? (rng.chance(0.5) ? {} : randomValue(rng));
    json = rng.weighted<() => unknown>([
      [3, () => base],
      [6, () => (typeof base === 'object' && base !== null && !Array.isArray(base) ? mutate(rng, base as Record<string, unknown>) : randomValue(rng))],
      [1, () => rng.pick([[], 'str', 42, null, true, [base]])],
      [0.5, () => undefined],
    ])();
    if (json !== undefined && rng.chance(0.04)) {
      const text = JSON.stringify(json) ?? 'null';
      raw = rng.weighted<() => string>([
        [3, () => text.slice(0, rng.int(text.length))],
        [1, () => text + rng.pick([',', '}', ' x', '\u0000'])],
        [1, () => randomUnicode(rng, rng.range(0, 100))],
        [1, () => '{"a":'.repeat(rng.range(1, 2000))],
        [0.2, () => JSON.stringify({ plaintext: 'A'.repeat(1024 * 1024 + rng.range(1, 5000)) })],
      ])();
    }
  }

  // Headers.
  const headers: Record<string, string> = {};
  const isRevokeSelf = method === 'DELETE' && template === '/v1/tokens/self';
  const auth = rng.weighted<() => string | undefined>([
    [isRevokeSelf ? 0 : 55, () => `Bearer ${fx.root}`],
    [15, () => `Bearer ${fx.limited}`],
    [5, () => `Bearer ${fx.noPolicies}`],
    [5, () => `Bearer ${rng.pick(fx.disposable)}`],
    [10, () => undefined],
    [10, () => rng.pick(['Bearer', 'Bearer khs.nope', `Basic ${b64('a:b')}`, `Bearer ${fx.root}x`, `Bearer khs.${alnum(rng, 200)}`, `bearer ${fx.limited}`, `Bearer  ${fx.root}`, alnum(rng, 10)])],
  ])();
  // Revoking the root or shared tokens would end the run early: only disposable ones are revoked.
  if (auth !== undefined) headers.authorization = isRevokeSelf && (auth.includes(fx.root) || auth.includes(fx.limited)) ? `Bearer ${fx.disposable[0]}` : auth;
  let contentType: string | null | undefined;
  if (json !== undefined || raw !== undefined) {
    contentType = rng.weighted<() => string | null>([
      [85, () => 'application/json'],
      [3, () => 'application/json; charset=utf-8'],
      [2, () => 'text/plain'],
      [2, () => 'application/x-www-form-urlencoded'],
      [2, () => 'application/octet-stream'],
      [1, () => 'multipart/form-data; boundary=x'],
      [1, () => 'application/json; charset=latin1'],
      [1, () => 'APPLICATION/JSON'],
      [3, () => null],
    ])();
  }
  if (rng.chance(0.1)) headers['x-request-id'] = alnum(rng, rng.range(0, 60));
  if (rng.chance(0.05)) headers.accept = rng.pick(['text/html', '*/*', 'application/xml', 'application/json;q=0']);
  if (rng.chance(0.05)) headers['x-forwarded-for'] = `${rng.int(256)}.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`;
  if (rng.chance(0.03)) headers['accept-encoding'] = rng.pick(['gzip', 'br', 'identity', 'x']);
  if (rng.chance(0.02)) headers['content-encoding'] = rng.pick(['gzip', 'deflate', 'x']);
  if (rng.chance(0.02)) headers[`x-${alnum(rng, 5).toLowerCase().replace(/[^a-z0-9]/g, 'a')}`] = alnum(rng, rng.range(0, 2000));

  const req: RawRequest = { method, path, headers, ...(raw !== undefined ? { raw } : json !== undefined ? { json } : {}), contentType };
  const size = raw !== undefined ? Buffer.byteLength(raw) : json !== undefined ? Buffer.byteLength(JSON.stringify(json) ?? '') : 0;
  if (size > BODY_LIMIT) req.earlyResponseMs = 2_000;
  return { index, req, describe: `#${index} ${method} ${template} → ${path.length > 160 ? `${path.slice(0, 160)}…` : path}` };
}

// ---------------------------------------------------------------- the run

interface Failure { what: string; status?: number; response?: string; error?: string; body?: string }

function checkResponse(p: Planned, res: RawResponse, failures: Failure[]): void {
  const fail = (why: string): void => {
    failures.push({
      what: `${p.describe}: ${why}`, status: res.status, response: res.text.slice(0, 300),
      body: p.req.raw !== undefined ? `raw ${String(p.req.raw).slice(0, 200)}` : JSON.stringify(p.req.json)?.slice(0, 200),
    });
  };
  if (res.status >= 500) return fail('server error');
  if (res.status < 100) return fail('no status');
  if (res.status >= 200 && res.status < 300) return;
  // A redirect is an answer too: the browser form of the SSO callback sends the browser on with 303.
  if (res.status >= 300 && res.status < 400 && typeof res.headers.location === 'string') return;
  if (p.req.method === 'HEAD') return; // a HEAD response has no body by definition
  if (!res.body || typeof res.body !== 'object') return fail('non-JSON error body');
  if (typeof res.body.error?.code !== 'string' || !ERROR_CODE.test(res.body.error.code)) return fail('error.code missing or malformed');
  if (typeof res.body.error.message !== 'string' || typeof res.body.request_id !== 'string') return fail('error body shape');
}

describe(`fuzz (seed ${SEED}, ${TOTAL} requests)`, () => {
  it('the OpenAPI document lists the routes to fuzz', () => {
    assert.ok(operations.length >= 20, `only ${operations.length} operations`);
  });

  it('planning is deterministic per seed', () => {
    for (const i of [0, 1, 77, TOTAL - 1]) assert.deepEqual(plan(i), plan(i));
  });

  it(`${TOTAL} random requests: no 5xx, every refusal has an ERR_* code, health stays 200`, { timeout: 180_000 }, async (t) => {
    console.log(`keyhold fuzz: seed ${SEED} (replay with KEYHOLD_FUZZ_SEED=${SEED}), ${TOTAL} requests, concurrency ${CONCURRENCY}`);
    t.diagnostic(`seed ${SEED}`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const failures: Failure[] = [];
    const statuses = new Map<number, number>();
    const codes = new Map<string, number>();
    let next = 0;
    let sent = 0;
    let retries = 0;
    let healthChecks = 0;
    const started = Date.now();

    const send = async (p: Planned): Promise<RawResponse | undefined> => {
      try {
        return await request(server.address, { ...p.req, agent });
      } catch (err) {
        // A keep-alive socket the server closed just before reuse: retry once on a fresh connection.
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ECONNRESET' || code === 'EPIPE') {
          retries++;
          try {
            return await request(server.address, p.req);
          } catch (again) {
            failures.push({ what: `${p.describe}: no response`, error: String(again) });
            return undefined;
          }
        }
        failures.push({ what: `${p.describe}: no response`, error: String(err) });
        return undefined;
      }
    };

    const worker = async () => {
      for (;;) {
        const index = next++;
        if (index >= TOTAL) return;
        const p = plan(index);
        const res = await send(p);
        sent++;
        if (res) {
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const code = res.body?.error?.code;
          if (typeof code === 'string') codes.set(code, (codes.get(code) ?? 0) + 1);
          checkResponse(p, res, failures);
        }
        if (index % HEALTH_EVERY === HEALTH_EVERY - 1) {
          healthChecks++;
          const health = await request(server.address, { method: 'GET', path: '/v1/sys/health' });
          if (health.status !== 200) failures.push({ what: `health after #${index}`, status: health.status, response: health.text.slice(0, 300) });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();

    const seconds = (Date.now() - started) / 1000;
    const summary = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
    const topCodes = [...codes.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}:${n}`).join(' ');
    console.log(`keyhold fuzz: ${sent} requests in ${seconds.toFixed(1)} s (${(sent / seconds).toFixed(0)}/s); statuses ${summary}; retries ${retries}; health checks ${healthChecks}`);
    console.log(`keyhold fuzz: error codes ${topCodes}`);

    assert.equal(sent, TOTAL, 'every planned request was sent');
    assert.ok(sent >= 10_000 || process.env.KEYHOLD_FUZZ_REQUESTS !== undefined, 'at least 10,000 requests by default');
    assert.equal([...statuses.values()].reduce((a, b) => a + b, 0) + failures.filter((f) => f.error).length, TOTAL, 'every request has an outcome');
    if (failures.length > 0) {
      assert.fail(`${failures.length} bad responses (seed ${SEED}); first ones:\n${failures.slice(0, 15).map((f) => JSON.stringify(f)).join('\n')}`);
    }
    // The run must have exercised success and refusal paths alike, or it is not testing much.
    assert.ok([...statuses.keys()].some((s) => s >= 200 && s < 300), 'some requests succeeded');
    assert.ok((statuses.get(400) ?? 0) > TOTAL / 10, 'many requests were refused as bad');
  });

  it('the server process is still alive and healthy', async () => {
    assert.equal(server.process.exitCode, null, 'exitCode');
    assert.equal(server.process.signalCode, null, 'signalCode');
    await assertHealthy(server.address);
    // The root token still works (nothing in the run revoked or broke it).
    const self = await request(server.address, { method: 'GET', path: '/v1/tokens/self', token: fx.root });
    assertOk(self);
    assert.deepEqual(self.body.policies, ['root']);
    const errors = server.output().split('\n').filter((line) => /"level":(50|60)/.test(line));
    assert.deepEqual(errors.slice(0, 5), [], 'no error or fatal lines in the server log');
  });
});
