/**
 * The audit log of a real `keyhold dev`: every audited request leaves a response entry with its
 * outcome, and every state-changing request that reached its handler a write-ahead request entry
 * before it; no secret value is in clear, `keyhold audit verify` accepts the untouched file, and any
 * single changed byte, deleted line or swapped pair is reported at exactly the right seq.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { inParallel } from '../../helpers/pool.js';
import { runCliTimed } from './support.js';

const CANARY = `CANARY-SECRET-${randomBytes(12).toString('hex')}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');

interface Sent {
  what: string;
  status: number;
  requestId: string;
  audited: boolean;
  /** A state-changing request that reached its handler: it has a write-ahead request entry. */
  writeAhead: boolean;
}

/** POST routes that change nothing (config readOnly): one outcome entry only. */
const READ_ONLY_POST = /\/v1\/keys\/[^/]+\/(encrypt|decrypt|rewrap|datakey|sign|verify)$/;
/** Requests of this test refused before their handler (authentication, validation, authorisation). */
const REFUSED_BEFORE_HANDLER = new Set(['denied key create', 'unknown body field']);

interface Entry {
  seq: number;
  type: 'request' | 'response' | 'chain-start' | 'checkpoint';
  requestId: string;
  operation: string;
  path: string;
  hash: string;
  prev: string;
  time: string;
  actor?: { tokenId?: string; policies?: string[] };
  outcome?: { status: number; code?: string };
  fields?: Record<string, string>;
}

interface VerifyOutput { ok: boolean; entries: number; badSeq?: number; line?: number; reason?: string }

let publicKeyFile = '';

async function verify(file: string): Promise<{ code: number | null; result: VerifyOutput; stdout: string; stderr: string }> {
  // runCliTimed: no stdin pipe (helpers' runCli can hit EPIPE when the CLI exits before stdin is closed).
  const r = await runCliTimed(['audit', 'verify', '--file', file, '--public-key', publicKeyFile], {}, 30_000);
  let result: VerifyOutput;
  try {
    result = JSON.parse(r.stdout) as VerifyOutput;
  } catch {
    assert.fail(`audit verify printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, result, stdout: r.stdout, stderr: r.stderr };
}

/** A different printable byte in place of `byte` (never a newline, so the line count stays). */
function flipped(byte: number): number {
  const c = String.fromCharCode(byte);
  if (/[0-8]/.test(c)) return byte + 1;
  if (c === '9') return '0'.charCodeAt(0);
  if (/[a-y]/.test(c)) return byte + 1;
  if (c === 'z') return 'a'.charCodeAt(0);
  if (/[A-Z]/.test(c)) return c.toLowerCase().charCodeAt(0);
  if (c === '"') return "'".charCodeAt(0);
  return 'x'.charCodeAt(0);
}

describe('audit log of keyhold dev', { timeout: 180_000 }, () => {
  const dataDir = tempDir('keyhold-audit-');
  const auditFile = path.join(dataDir, 'audit.log');
  const work = tempDir('keyhold-audit-copies-');
  const sent: Sent[] = [];
  let server: DevServer;
  let rootToken = '';
  let lines: string[] = [];
  let entries: Entry[] = [];

  before(async () => {
    server = await startDev(dataDir);
    rootToken = server.rootToken;
    publicKeyFile = path.join(work, 'audit-public.pem');
    const pk = await runCliTimed(['audit', 'public-key'], { KEYHOLD_ADDR: server.address }, 30_000);
    assert.equal(pk.code, 0, pk.stderr);
    fs.writeFileSync(publicKeyFile, pk.stdout);
    const send = async (what: string, method: string, p: string, token: string | undefined, body?: unknown, audited = true) => {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(server.address + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      const requestId = res.headers.get('x-request-id') ?? '';
      assert.ok(requestId, `${what}: no x-request-id`);
      const writeAhead = audited && method !== 'GET' && !READ_ONLY_POST.test(p) && !REFUSED_BEFORE_HANDLER.has(what);
      sent.push({ what, status: res.status, requestId, audited, writeAhead });
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const ok = async (what: string, method: string, p: string, token: string | undefined, body?: unknown) => {
      const r = await send(what, method, p, token, body);
      assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const root = rootToken;

    await ok('create aes key', 'POST', '/v1/keys', root, { name: 'app', type: 'aes256-gcm', protection: 'hsm' });
    await ok('create ec key', 'POST', '/v1/keys', root, { name: 'signer', type: 'ec-p256', protection: 'wrapped' });
    const enc = await ok('encrypt', 'POST', '/v1/keys/app/encrypt', root, { plaintext: b64(CANARY) });
    await ok('decrypt', 'POST', '/v1/keys/app/decrypt', root, { ciphertext: enc.ciphertext });
    const sig = await ok('sign', 'POST', '/v1/keys/signer/sign', root, { input: b64(CANARY) });
    await ok('verify', 'POST', '/v1/keys/signer/verify', root, { input: b64(CANARY), signature: sig.signature });
    await ok('rotate', 'POST', '/v1/keys/app/rotate', root);
    await ok('describe key', 'GET', '/v1/keys/app', root);
    await ok('list keys', 'GET', '/v1/keys', root);
    await ok('datakey', 'POST', '/v1/keys/app/datakey', root, { bits: 128 });
    await ok('put secret v1', 'PUT', '/v1/secrets/team/db', root, { data: { password: CANARY } });
    await ok('put secret v2', 'PUT', '/v1/secrets/team/db', root, { data: { password: `${CANARY}-2`, user: 'x' } });
    await ok('get secret', 'GET', '/v1/secrets/team/db', root);
    await ok('get secret v1', 'GET', '/v1/secrets/team/db?version=1', root);
    await ok('list secrets', 'GET', '/v1/secrets/team?list=true', root);
    await ok('read metadata', 'GET', '/v1/secret-metadata/team/db', root);
    await send('write metadata', 'PUT', '/v1/secret-metadata/team/db', root, { max_versions: 5 });
    await ok('soft delete', 'DELETE', '/v1/secrets/team/db?versions=1', root);
    await ok('undelete', 'POST', '/v1/secret-undelete/team/db', root, { versions: [1] });
    await ok('put policy', 'PUT', '/v1/policies/reader', root, { rules: [{ path: 'secrets/public/*', capabilities: ['read'] }] });
    await ok('get policy', 'GET', '/v1/policies/reader', root);
    await ok('list policies', 'GET', '/v1/policies', root);
    const limited = await ok('create token', 'POST', '/v1/tokens', root, { policies: ['reader'], ttl: '1h' });
    await ok('lookup self', 'GET', '/v1/tokens/self', limited.token);
    // Refused and failing requests are audited too.
    assert.equal((await send('denied read', 'GET', '/v1/secrets/team/db', limited.token)).status, 403);
    assert.equal((await send('denied key create', 'POST', '/v1/keys', limited.token, { name: 'nope', type: 'aes256-gcm', protection: 'hsm' })).status, 403);
    assert.equal((await send('missing secret', 'GET', '/v1/secrets/team/none', root)).status, 404);
    assert.equal((await send('bad ciphertext', 'POST', '/v1/keys/app/decrypt', root, { ciphertext: 'keyhold:app:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status, 400);
    assert.equal((await send('unknown body field', 'POST', '/v1/keys', root, { name: 'x', type: 'aes256-gcm', protection: 'hsm', extra: CANARY })).status, 400);
    assert.equal((await send('no token', 'GET', '/v1/secrets/team/db', undefined)).status, 401);
    assert.equal((await send('bad token', 'GET', '/v1/secrets/team/db', 'not-a-token')).status, 401);
    await send('revoke self', 'DELETE', '/v1/tokens/self', limited.token);
    assert.equal((await send('revoked token', 'GET', '/v1/tokens/self', limited.token)).status, 401);
    // Public endpoints are not audited.
    assert.equal((await send('health', 'GET', '/v1/sys/health', undefined, undefined, false)).status, 200);

    assert.equal(await server.stop('SIGTERM'), 0, server.output());
    lines = fs.readFileSync(auditFile, 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'audit log does not end with a newline');
    entries = lines.map((l) => JSON.parse(l) as Entry);
  });

  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('verifies the untouched log and reports the entry count', async () => {
    const r = await verify(auditFile);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.result.ok, true);
    assert.equal(r.result.entries, lines.length);
    assert.ok(sent.length >= 30, `only ${sent.length} requests`);
    console.log(`# audit verify: ${r.result.entries} entries for ${sent.length} requests`);
  });

  it('has one outcome entry for every audited request, and a write-ahead request entry before it for every state-changing one that ran', () => {
    entries.forEach((e, i) => assert.equal(e.seq, i + 1));
    assert.equal(entries[0]?.type, 'chain-start');
    assert.equal(entries.at(-1)?.type, 'checkpoint', 'a clean stop ends with a checkpoint');
    const requestEntries = entries.filter((e) => e.type === 'request' || e.type === 'response');
    const byId = new Map<string, Entry[]>();
    for (const e of requestEntries) byId.set(e.requestId, [...(byId.get(e.requestId) ?? []), e]);
    let writeAheads = 0;
    for (const s of sent) {
      const mine = byId.get(s.requestId) ?? [];
      if (!s.audited) {
        assert.equal(mine.length, 0, `${s.what} (public) was audited`);
        continue;
      }
      const responses = mine.filter((e) => e.type === 'response');
      const requests = mine.filter((e) => e.type === 'request');
      assert.equal(responses.length, 1, `${s.what} (${s.status}): ${responses.length} response entries`);
      assert.equal(requests.length, s.writeAhead ? 1 : 0, `${s.what} (${s.status}): ${requests.length} request entries`);
      const entry = responses[0] as Entry;
      assert.equal(entry.outcome?.status, s.status, `${s.what}: outcome.status`);
      if (s.status >= 400) assert.ok(entry.outcome?.code, `${s.what}: no outcome.code`);
      assert.ok(entry.operation, `${s.what}: no operation`);
      const ahead = requests[0];
      if (ahead) {
        writeAheads++;
        assert.ok(ahead.seq < entry.seq, `${s.what}: request entry after its response`);
        assert.equal(ahead.outcome, undefined, `${s.what}: a request entry has no outcome`);
        assert.equal(ahead.operation, entry.operation);
        assert.equal(ahead.path, entry.path);
        assert.deepEqual(ahead.actor, entry.actor);
      }
    }
    assert.ok(writeAheads >= 10, `only ${writeAheads} write-ahead entries`);
    // And nothing else is in the log.
    const sentIds = new Set(sent.map((s) => s.requestId));
    for (const e of requestEntries) assert.ok(sentIds.has(e.requestId), `entry ${e.seq} belongs to no request of this test`);
    for (const e of requestEntries.filter((x) => x.type === 'response')) assert.equal(typeof e.outcome?.status, 'number');
    const denied = sent.filter((s) => s.status === 403);
    assert.equal(denied.length, 2);
    for (const d of denied) {
      const entry = requestEntries.find((e) => e.requestId === d.requestId && e.type === 'response');
      assert.equal(entry?.outcome?.code, 'ERR_PERMISSION_DENIED');
      assert.deepEqual(entry?.actor?.policies, ['reader']);
    }
  });

  it('keeps secret values out of the log: only hmac-sha256 values', () => {
    const raw = fs.readFileSync(auditFile);
    for (const needle of [CANARY, b64(CANARY), rootToken]) assert.equal(raw.indexOf(needle), -1, 'a secret value is in the audit log');
    const hmac = /^hmac-sha256:[0-9a-f]{64}$/;
    let bodies = 0;
    for (const e of entries) {
      if (e.actor?.tokenId !== undefined) assert.match(e.actor.tokenId, hmac, `entry ${e.seq} actor.tokenId`);
      for (const [name, value] of Object.entries(e.fields ?? {})) {
        if (name === 'version') assert.match(value, /^\d+$/);
        else if (name === 'issued_accessor') assert.match(value, /^kha\.[A-Za-z0-9_-]{32}$/); // an accessor is not a secret (issue 9)
        // Requests without a valid token: sha256 of the whole request target (their path is capped).
        else if (name === 'path_sha256') assert.match(value, /^[0-9a-f]{64}$/);
        // Who sent it, as an address only (never the X-Forwarded-For text): not a secret.
        else if (name === 'client_address' || name === 'peer_address') assert.ok(isIP(value) !== 0, `entry ${e.seq} ${name} ${value}`);
        else {
          assert.match(value, hmac, `entry ${e.seq} field ${name}`);
          bodies++;
        }
      }
    }
    assert.ok(bodies >= 15, `only ${bodies} HMACed fields`);
  });

  it('names the altered entry for single-byte changes in the hash, prev, seq, time, outcome and other fields', async () => {
    const n = lines.length;
    // Request entries only (the byte positions below are theirs); checkpoints have their own tests.
    const requestSeqs = entries.filter((e) => e.type === 'request').map((e) => e.seq);
    const pick = (i: number) => requestSeqs[Math.min(requestSeqs.length - 1, Math.max(0, i))] as number;
    const sample = new Set<number>([pick(0), pick(Math.floor(requestSeqs.length / 2)), pick(requestSeqs.length - 1)]);
    while (sample.size < 8) sample.add(pick(randomInt(0, requestSeqs.length)));
    assert.ok(n > requestSeqs.length);
    const cases: Array<{ seq: number; field: string; offset: number }> = [];
    for (const seq of sample) {
      const line = lines[seq - 1] as string;
      const at = (field: string, marker: string, skip = 0) => {
        const i = line.indexOf(marker);
        assert.notEqual(i, -1, `entry ${seq} has no ${marker}`);
        cases.push({ seq, field, offset: i + marker.length + skip });
      };
      at('hash', '"hash":"', 0);
      at('hash', '"hash":"', 63);
      at('prev', '"prev":"', 17);
      at('seq', '"seq":', 0);
      at('time', '"time":"', 3);
      at('time', '"time":"', 20);
      at('requestId', '"requestId":"', 5);
      at('type', '"type":"', 1);
      if (line.includes('"outcome":{')) {
        at('outcome', '"outcome":{', 0);
        at('outcome.status', '"status":', 1);
      } else {
        at('operation', '"operation":"', 2);
      }
      cases.push({ seq, field: 'opening brace', offset: 0 }, { seq, field: 'closing brace', offset: line.length - 1 });
    }
    const offsets = lines.map((_, i) => lines.slice(0, i).reduce((sum, l) => sum + Buffer.byteLength(l) + 1, 0));
    const original = fs.readFileSync(auditFile);
    const failures: string[] = [];
    await inParallel(cases, 6, async (c) => {
      const bytes = Buffer.from(original);
      const pos = (offsets[c.seq - 1] as number) + c.offset;
      const before = bytes[pos] as number;
      bytes[pos] = flipped(before);
      assert.notEqual(bytes[pos], before);
      assert.notEqual(bytes[pos], 0x0a);
      const copy = path.join(work, `flip-${c.seq}-${c.offset}.log`);
      fs.writeFileSync(copy, bytes);
      const r = await verify(copy);
      const what = `seq ${c.seq} ${c.field} (line offset ${c.offset}, ${String.fromCharCode(before)}→${String.fromCharCode(bytes[pos] as number)})`;
      if (r.code === 0 || r.result.ok !== false || r.result.badSeq !== c.seq) {
        failures.push(`${what}: exit ${r.code}, ${r.stdout.trim()}`);
      }
    });
    assert.deepEqual(failures, []);
    console.log(`# ${cases.length} single-byte alterations over entries ${[...sample].sort((a, b) => a - b).join(', ')} all detected at the right seq`);
  });

  it('names the right seq when a line is deleted or two lines are swapped', async () => {
    const n = lines.length;
    const write = (name: string, ls: string[]) => {
      const file = path.join(work, name);
      fs.writeFileSync(file, ls.map((l) => `${l}\n`).join(''));
      return file;
    };
    const mid = Math.ceil(n / 2);
    const cases: Array<{ name: string; file: string; badSeq: number }> = [
      { name: 'delete first', file: write('del-first.log', lines.slice(1)), badSeq: 1 },
      { name: `delete ${mid}`, file: write('del-mid.log', lines.filter((_, i) => i !== mid - 1)), badSeq: mid },
      { name: `delete ${n - 1}`, file: write('del-penultimate.log', lines.filter((_, i) => i !== n - 2)), badSeq: n - 1 },
    ];
    for (const a of [1, mid, n - 1]) {
      const swapped = [...lines];
      [swapped[a - 1], swapped[a]] = [swapped[a] as string, swapped[a - 1] as string];
      cases.push({ name: `swap ${a} and ${a + 1}`, file: write(`swap-${a}.log`, swapped), badSeq: a });
    }
    const far = [...lines];
    [far[1], far[n - 2]] = [far[n - 2] as string, far[1] as string];
    cases.push({ name: `swap 2 and ${n - 1}`, file: write('swap-far.log', far), badSeq: 2 });
    for (const c of cases) {
      const r = await verify(c.file);
      assert.notEqual(r.code, 0, `${c.name}: verify passed`);
      assert.equal(r.result.ok, false, c.name);
      assert.equal(r.result.badSeq, c.badSeq, `${c.name}: ${r.stdout}`);
    }
  });
});
