/**
 * The audit log against an attacker and a careless operator, with a real `keyhold` server and a
 * real SoftHSM token. Every tampering in the table is caught twice: `keyhold audit verify` (the
 * real CLI, with only the public key and the exported checkpoint) fails and says why, and the
 * server refuses to start on it; `--new-audit-chain` then starts over and records that choice.
 * Then, on running servers: the file deleted or replaced, torn tails, rotation under load, and
 * recovery from an unwritable file without a restart (root only: chattr +i).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { canonicalJson } from '../../../src/audit/canonical.js';
import { entryHash, type SealedAnyAuditEntry, type SystemEntry } from '../../../src/audit/entry.js';
import { sleep } from '../../helpers/processes.js';
import { call, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { DEV_TOKEN_LABEL, runCliTimed, softHsmModule } from './support.js';

type Line = SealedAnyAuditEntry & { data?: Record<string, string | number> };

const parseLines = (buf: Buffer | string): Line[] => buf.toString().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
const serialize = (lines: Line[]): string => lines.map((l) => `${canonicalJson(l)}\n`).join('');

/** What an attacker without the HSM can do after an edit: recompute seq, prev and hash from `from` on. */
function reseal(lines: Line[], from: number): Line[] {
  const out = lines.map((l) => ({ ...l }));
  for (let i = from; i < out.length; i++) {
    const { hash: _h, ...entry } = out[i] as Line;
    entry.seq = i + 1;
    entry.prev = i === 0 ? '0'.repeat(64) : (out[i - 1] as Line).hash;
    out[i] = { ...entry, hash: entryHash(entry as SystemEntry) } as Line;
  }
  return out;
}

async function traffic(server: { address: string }, token: string, n: number, tag = 't'): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await call(server.address, 'PUT', `/v1/secrets/${tag}/s${i % 7}`, token, { data: { v: `${tag}-${i}` } });
    assert.equal(r.status, 200, r.text);
  }
}

async function exportFromServer(address: string, token: string, dir: string): Promise<{ publicKey: string; checkpoint: string }> {
  const pk = await runCliTimed(['audit', 'public-key'], { KEYHOLD_ADDR: address }, 30_000);
  assert.equal(pk.code, 0, pk.stderr);
  const publicKey = path.join(dir, `public-${randomBytes(3).toString('hex')}.pem`);
  fs.writeFileSync(publicKey, pk.stdout);
  const cp = await runCliTimed(['audit', 'checkpoint'], { KEYHOLD_ADDR: address, KEYHOLD_TOKEN: token }, 30_000);
  assert.equal(cp.code, 0, cp.stderr);
  const checkpoint = path.join(dir, `checkpoint-${randomBytes(3).toString('hex')}.json`);
  fs.writeFileSync(checkpoint, cp.stdout);
  return { publicKey, checkpoint };
}

async function verifyCli(file: string, publicKey: string, checkpoint?: string): Promise<{ code: number | null; out: string; result: { ok: boolean; reason?: string; badSeq?: number; truncated?: boolean; entries?: number } }> {
  const r = await runCliTimed(['audit', 'verify', '--file', file, '--public-key', publicKey, ...(checkpoint ? ['--checkpoint', checkpoint] : [])], {}, 30_000);
  let result;
  try { result = JSON.parse(r.stdout); } catch { result = { ok: false, reason: `(no JSON) ${r.stderr}` }; }
  return { code: r.code, out: r.stdout + r.stderr, result };
}

/** `keyhold dev` on a data dir that must refuse to start: exit 1 with ERR_AUDIT_CHAIN_BROKEN, reason matching. */
async function assertDevRefuses(dataDir: string, reason: RegExp, what: string): Promise<void> {
  const r = await runCliTimed(['dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {}, 20_000);
  assert.equal(r.signal, null, `${what}: the server started (killed after 20 s):\n${r.stderr}`);
  assert.equal(r.code, 1, `${what}: exit ${r.code}:\n${r.stderr}`);
  const line = /^keyhold: ERR_AUDIT_CHAIN_BROKEN: (.+)$/m.exec(r.stderr);
  assert.ok(line, `${what}: no ERR_AUDIT_CHAIN_BROKEN line:\n${r.stderr}`);
  assert.match(line[1] as string, reason, what);
  assert.match(line[1] as string, /--new-audit-chain/, `${what}: the message does not say how to go on`);
}

const isRoot = process.getuid?.() === 0;

describe('audit log tampering (real server, real SoftHSM)', { timeout: 600_000 }, () => {
  const work = tempDir('keyhold-tamper-');
  const dataDir = path.join(work, 'a');
  const otherDir = path.join(work, 'b');
  const auditFile = path.join(dataDir, 'audit.log');
  let rootToken = '';
  let publicKey = '';
  let checkpoint = '';
  let pristine: Buffer;
  let older: Buffer;
  let foreign: Buffer;

  before(async () => {
    // Server A: some traffic, a stop (a copy of the log then is "an older copy"), more traffic, a clean stop.
    let a = await startDev(dataDir);
    rootToken = a.rootToken;
    await traffic(a, rootToken, 12, 'one');
    assert.equal(await a.stop(), 0, a.output());
    older = fs.readFileSync(auditFile);
    a = await startDev(dataDir);
    await traffic(a, rootToken, 12, 'two');
    // The checkpoint as exported while running, then the clean stop adds the final one to the barrier.
    ({ publicKey } = await exportFromServer(a.address, rootToken, work));
    assert.equal(await a.stop(), 0, a.output());
    // The checkpoint an auditor would have exported (the last clean stop's); the barrier's is newer still.
    a = await startDev(dataDir);
    ({ checkpoint } = await exportFromServer(a.address, rootToken, work));
    assert.equal(await a.stop(), 0, a.output());
    pristine = fs.readFileSync(auditFile);
    const b = await startDev(otherDir);
    await traffic(b, b.rootToken, 5, 'other');
    assert.equal(await b.stop(), 0);
    foreign = fs.readFileSync(path.join(otherDir, 'audit.log'));
  });

  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('the untouched log verifies with the public key and the checkpoint, and the server starts on it', async () => {
    const r = await verifyCli(auditFile, publicKey, checkpoint);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.result.ok, true);
    const lines = parseLines(pristine);
    assert.equal(lines[0]?.type, 'chain-start');
    assert.ok(lines.filter((l) => l.type === 'checkpoint').length >= 4, 'init, two clean stops and the first start each leave a checkpoint');
  });

  it('a --checkpoint file is only evidence if the HSM key signed it', async () => {
    const forged = JSON.parse(fs.readFileSync(checkpoint, 'utf8')) as { head_hash: string };
    forged.head_hash = `${forged.head_hash.startsWith('0') ? '1' : '0'}${forged.head_hash.slice(1)}`;
    const file = path.join(work, 'forged-checkpoint.json');
    fs.writeFileSync(file, JSON.stringify(forged));
    const r = await runCliTimed(['audit', 'verify', '--file', auditFile, '--public-key', publicKey, '--checkpoint', file], {}, 30_000);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /ERR_SIGNATURE_INVALID: --checkpoint has an invalid signature/);
    const noKey = await runCliTimed(['audit', 'verify', '--file', auditFile], {}, 30_000);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--public-key/);
  });

  const middleCheckpoint = (lines: Line[]): number => lines.findIndex((l, i) => l.type === 'checkpoint' && i > 3 && i < lines.length - 3);

  const attacks: Array<{ name: string; make: () => Buffer | string; verify: RegExp; start: RegExp; noCheckpoint?: boolean }> = [
    {
      name: 'entry 3 rewritten and everything after it re-sealed',
      make: () => { const l = parseLines(pristine); l[2] = { ...(l[2] as Line), path: '/v1/secrets/forged' } as Line; return serialize(reseal(l, 2)); },
      verify: /rewritten/, start: /rewritten/,
    },
    { name: 'tail deleted', make: () => serialize(parseLines(pristine).slice(0, -4)), verify: /truncated/, start: /truncated/ },
    { name: 'truncated to 0 bytes', make: () => '', verify: /truncated/, start: /truncated/ },
    { name: 'another server\'s log swapped in', make: () => foreign, verify: /another log|another key/, start: /another log/ },
    { name: 'another server\'s log, verified without --checkpoint', make: () => foreign, verify: /another key/, start: /another log/, noCheckpoint: true },
    { name: 'an older copy of the same log swapped in', make: () => older, verify: /truncated/, start: /truncated/ },
    {
      name: 'a checkpoint line dropped',
      make: () => { const l = parseLines(pristine); l.splice(middleCheckpoint(l), 1); return serialize(l); },
      verify: /seq is|prev does not match/, start: /seq is|prev does not match/,
    },
    {
      name: 'a checkpoint dropped and the rest re-sealed',
      make: () => { const l = parseLines(pristine); const i = middleCheckpoint(l); l.splice(i, 1); return serialize(reseal(l, i)); },
      verify: /removed|rewritten/, start: /removed|rewritten/,
    },
    {
      name: 'a checkpoint signature forged',
      make: () => {
        const l = parseLines(pristine);
        const i = middleCheckpoint(l);
        const sig = Buffer.from((l[i] as Line).data?.['sig'] as string, 'base64');
        sig[5] = (sig[5] as number) ^ 0x40;
        l[i] = { ...(l[i] as Line), data: { ...(l[i] as Line).data, sig: sig.toString('base64') } } as Line;
        return serialize(reseal(l, i));
      },
      verify: /signature is invalid/, start: /signature is invalid/,
    },
    {
      name: 'a checkpoint\'s head edited',
      make: () => {
        const l = parseLines(pristine);
        const i = middleCheckpoint(l);
        l[i] = { ...(l[i] as Line), data: { ...(l[i] as Line).data, headHash: (l[1] as Line).hash } } as Line;
        return serialize(reseal(l, i));
      },
      verify: /signature is invalid/, start: /signature is invalid/,
    },
  ];

  for (const attack of attacks) {
    it(`${attack.name}: verify fails and says why; the server refuses to start`, async () => {
      const copy = path.join(work, `attack-${attacks.indexOf(attack)}.log`);
      fs.writeFileSync(copy, attack.make());
      const r = await verifyCli(copy, publicKey, attack.noCheckpoint ? undefined : checkpoint);
      assert.notEqual(r.code, 0, `verify passed:\n${r.out}`);
      assert.equal(r.result.ok, false);
      assert.match(r.result.reason ?? '', attack.verify, r.out);
      assert.match(r.out, /keyhold: audit log (bad|truncated)/);
      fs.copyFileSync(copy, auditFile);
      try {
        await assertDevRefuses(dataDir, attack.start, attack.name);
      } finally {
        fs.writeFileSync(auditFile, pristine);
      }
    });
  }

  it('entries after the last checkpoint (as a kill -9 leaves them) rewritten and re-sealed: verify cannot tell, and says so', async () => {
    const l = parseLines(pristine);
    const last = l.map((e) => e.type).lastIndexOf('response');
    const crashed = l.slice(0, last + 1); // nothing after it, so no checkpoint signs it
    crashed[last] = { ...(crashed[last] as Line), path: '/v1/secrets/forged' } as Line;
    const file = path.join(work, 'unsigned-tail.log');
    fs.writeFileSync(file, serialize(reseal(crashed, last)));
    const r = await verifyCli(file, publicKey);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /note: \d+ entries after seq \d+ \(the head the last checkpoint signs\) are chained but not signed: a rewrite of them cannot be detected/);
    assert.match(r.out, /without --checkpoint a log cut or rewritten after its last checkpoint cannot be detected/);
    // The untouched log ends with the clean stop's checkpoint: nothing to warn about.
    const clean = await verifyCli(auditFile, publicKey, checkpoint);
    assert.doesNotMatch(clean.out, /not signed/);
  });

  it('a missing file refuses the start; --new-audit-chain starts a new chain that records the choice, and later starts accept it', async () => {
    fs.rmSync(auditFile);
    await assertDevRefuses(dataDir, /truncated/, 'missing file');
    const oldChain = parseLines(pristine)[0]?.data?.['chain'];
    fs.writeFileSync(auditFile, serialize(parseLines(pristine).slice(0, -4)));
    const server = await startDev(dataDir, {}, ['--new-audit-chain']);
    try {
      assert.match(server.output(), /starting a new chain \(new-audit-chain\)/);
      const health = await call(server.address, 'GET', '/v1/sys/health');
      assert.equal(health.body.audit.ok, true);
      assert.notEqual(health.body.audit.chain, oldChain);
      const first = parseLines(fs.readFileSync(auditFile))[0] as Line;
      assert.equal(first.type, 'chain-start');
      assert.equal(first.data?.['reason'], 'new-audit-chain');
      assert.equal(first.data?.['previousChain'], oldChain);
      assert.match(String(first.data?.['previousState']), /truncated/);
      assert.equal(first.data?.['previousHeadSeq'], parseLines(pristine).length);
      const kept = fs.readdirSync(dataDir).filter((f) => f.startsWith('audit.log.abandoned-'));
      assert.equal(kept.length, 1, 'the old file is kept aside');
      await traffic(server, rootToken, 3, 'new');
      ({ publicKey, checkpoint } = await exportFromServer(server.address, rootToken, work));
    } finally {
      assert.equal(await server.stop(), 0, server.output());
    }
    const again = await startDev(dataDir);
    assert.equal(await again.stop(), 0, again.output());
    const r = await verifyCli(auditFile, publicKey, checkpoint);
    assert.equal(r.code, 0, r.out);
  });

  describe('on a running server', () => {
    for (const [what, change, reason] of [
      ['deleted', (f: string) => fs.rmSync(f), 'FILE_DELETED'],
      ['replaced', (f: string) => { fs.copyFileSync(f, `${f}.new`); fs.renameSync(`${f}.new`, f); }, 'FILE_REPLACED'],
      ['cut to 0 bytes in place', (f: string) => fs.truncateSync(f, 0), 'FILE_TRUNCATED'],
    ] as const) {
      it(`the file ${what}: health false within about a second, audited requests refused with 503, nothing acknowledged`, async () => {
        const dir = path.join(work, `running-${what}`);
        const server = await startDev(dir);
        try {
          await traffic(server, server.rootToken, 3);
          change(path.join(dir, 'audit.log'));
          // At once: the batch after the change is not acknowledged.
          const put = await call(server.address, 'PUT', '/v1/secrets/after/change', server.rootToken, { data: { v: '1' } });
          assert.equal(put.status, 503, put.text);
          assert.equal(put.body.error.code, 'ERR_AUDIT_UNAVAILABLE');
          const health = await pollUntil('health to report the audit log failed', async () => {
            const h = await call(server.address, 'GET', '/v1/sys/health');
            return !h.body.audit.ok && h;
          }, { timeoutMs: 1500, intervalMs: 50 });
          assert.equal(health.status, 503);
          assert.equal(health.body.audit.ok, false);
          assert.equal(health.body.audit.reason, reason);
          assert.equal(health.body.audit.terminal, true);
          const read = await call(server.address, 'GET', '/v1/secrets/t/s0', server.rootToken);
          assert.equal(read.status, 503);
          assert.match(server.output(), new RegExp(`audit log failed \\(${reason}\\)`));
        } finally {
          await server.stop();
        }
      });
    }

    it('idle: a deleted file is noticed by the once-a-second check alone', async () => {
      const dir = path.join(work, 'running-idle');
      const server = await startDev(dir);
      try {
        fs.rmSync(path.join(dir, 'audit.log'));
        await sleep(1500);
        const health = await call(server.address, 'GET', '/v1/sys/health');
        assert.equal(health.body.audit.ok, false);
        assert.equal(health.body.audit.reason, 'FILE_DELETED');
      } finally {
        await server.stop();
      }
      // And the next start refuses: the barrier knows the chain.
      await assertDevRefuses(dir, /truncated/, 'deleted while running');
    });
  });

  describe('torn tail', () => {
    it('a complete last entry missing only its newline is kept; a half entry is dropped with a warning and recorded', async () => {
      const dir = path.join(work, 'torn');
      let server: DevServer = await startDev(dir);
      await traffic(server, server.rootToken, 4);
      assert.equal(await server.stop(), 0);
      const file = path.join(dir, 'audit.log');
      const whole = fs.readFileSync(file);
      fs.writeFileSync(file, whole.subarray(0, whole.length - 1));
      server = await startDev(dir);
      assert.equal(await server.stop(), 0, server.output());
      assert.match(server.output(), /had no final newline; added it/);
      const kept = fs.readFileSync(file);
      assert.deepEqual(kept.subarray(0, whole.length), whole, 'the entry without newline was not kept as it was');
      assert.ok(!parseLines(kept).some((l) => l.type === 'repair'));

      const half = '{"actor":{"policies":["root"],"tokenId":"hmac-sha256:0';
      fs.appendFileSync(file, half);
      const lastSeq = (parseLines(kept).at(-1) as Line).seq;
      server = await startDev(dir);
      try {
        assert.match(server.output(), new RegExp(`dropped ${Buffer.byteLength(half)} bytes of an incomplete final line`));
        const next = parseLines(fs.readFileSync(file)).find((l) => l.seq === lastSeq + 1) as Line;
        assert.equal(next.type, 'repair');
        assert.equal(next.data?.['droppedBytes'], Buffer.byteLength(half));
      } finally {
        assert.equal(await server.stop(), 0, server.output());
      }
    });
  });

  describe('rotation', () => {
    it('rotates at a small max size under load; verify reads the rotated set; a missing middle file is detected, and refuses the start', async () => {
      const dir = path.join(work, 'rotation');
      const dev = await startDev(dir);
      const token = dev.rootToken;
      assert.equal(await dev.stop(), 0);
      const config = path.join(dir, 'rotating.yaml');
      fs.writeFileSync(config, stringify({
        listen: '127.0.0.1:0',
        storage: { sqlite: { path: path.join(dir, 'keyhold.db') } },
        hsm: { module: softHsmModule(), tokenLabel: DEV_TOKEN_LABEL, pinFile: path.join(dir, 'hsm-pin') },
        audit: { path: path.join(dir, 'audit.log'), maxFileBytes: 8192 },
      }));
      const env = { SOFTHSM2_CONF: path.join(dir, 'softhsm2.conf') };
      const server = await startServer(config, env);
      let exported: { publicKey: string; checkpoint: string };
      try {
        await Promise.all(Array.from({ length: 8 }, (_, w) => traffic(server, token, 25, `load${w}`)));
        const health = await call(server.address, 'GET', '/v1/sys/health');
        assert.ok(health.body.audit.rotated_files >= 3, JSON.stringify(health.body.audit));
        exported = await exportFromServer(server.address, token, work);
      } finally {
        assert.equal(await server.stop(), 0, server.output());
      }
      const files = fs.readdirSync(dir).filter((f) => /^audit\.log\.\d{12}$/.test(f)).sort();
      assert.ok(files.length >= 3);
      for (const f of files) assert.equal(parseLines(fs.readFileSync(path.join(dir, f))).at(-1)?.type, 'checkpoint', `${f} does not end with a checkpoint`);
      const ok = await verifyCli(path.join(dir, 'audit.log'), exported.publicKey, exported.checkpoint);
      assert.equal(ok.code, 0, ok.out);
      const middle = path.join(dir, files[1] as string);
      fs.renameSync(middle, `${middle}.hidden`);
      const bad = await verifyCli(path.join(dir, 'audit.log'), exported.publicKey, exported.checkpoint);
      assert.notEqual(bad.code, 0);
      assert.match(bad.result.reason ?? '', /missing/);
      const refused = await runCliTimed(['server', '--config', config], env, 20_000);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /ERR_AUDIT_CHAIN_BROKEN: .*missing/);
    });
  });

  describe('recovery without restart', { skip: isRoot ? false : 'needs root (chattr +i)' }, () => {
    it('an immutable log fails closed (503, health false with the reason), and once writable again recovers by itself; the chain verifies', async () => {
      const dir = path.join(work, 'recovery');
      const server = await startDev(dir);
      const file = path.join(dir, 'audit.log');
      try {
        await traffic(server, server.rootToken, 3);
        execFileSync('chattr', ['+i', file]);
        try {
          const put = await call(server.address, 'PUT', '/v1/secrets/while/failed', server.rootToken, { data: { v: '1' } });
          assert.equal(put.status, 503, put.text);
          const health = await call(server.address, 'GET', '/v1/sys/health');
          assert.equal(health.status, 503);
          assert.deepEqual([health.body.audit.ok, health.body.audit.reason, health.body.audit.terminal], [false, 'EPERM', false]);
          await sleep(1200);
          assert.equal((await call(server.address, 'GET', '/v1/sys/health')).body.audit.ok, false, 'recovered while still immutable');
          assert.equal((await call(server.address, 'GET', '/v1/secrets/t/s0', server.rootToken)).status, 503);
        } finally {
          execFileSync('chattr', ['-i', file]);
        }
        const health = await pollUntil('health to report the audit log recovered', async () => {
          const h = await call(server.address, 'GET', '/v1/sys/health');
          return h.body.audit.ok && h;
        }, { timeoutMs: 3000, intervalMs: 50 });
        assert.equal(health.body.audit.ok, true, JSON.stringify(health.body.audit));
        assert.equal(health.status, 200);
        await traffic(server, server.rootToken, 2, 'after');
        assert.match(server.output(), /audit log recovered/);
        const exported = await exportFromServer(server.address, server.rootToken, work);
        assert.equal(await server.stop(), 0);
        const lines = parseLines(fs.readFileSync(file));
        const recovered = lines.find((l) => l.type === 'recovered') as Line;
        assert.equal(recovered.data?.['reason'], 'EPERM');
        const r = await verifyCli(file, exported.publicKey, exported.checkpoint);
        assert.equal(r.code, 0, r.out);
      } finally {
        try { execFileSync('chattr', ['-i', file]); } catch { /* not immutable */ }
        await server.stop();
      }
    });
  });
});
