import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { combine } from 'shamir-secret-sharing';
import { startP11KitFleet, type P11KitFleet, type P11KitMember } from '../../helpers/p11kit.js';
import { makeSoftHsmToken, type SoftHsmTestToken } from '../../helpers/softhsm.js';
import { call, CLI, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed, type CliResult } from './support.js';

/**
 * Recovery shares and `keyhold seal migrate`, end to end: a store initialised with 5 shares and a
 * threshold of 3 on a real SoftHSM token, served by a real server; the token's directory is then
 * deleted (the HSM lost for good), and the seal is moved to new tokens with two different triples
 * of shares, after which real servers on the new tokens serve every key and secret again; one of
 * the new tokens is an RSA/EC-only one behind a p11-kit server, where the seal becomes RSA-OAEP.
 */

const KEYS = [
  { name: 'aes-wrapped', type: 'aes256-gcm', protection: 'wrapped' },
  { name: 'hmac-wrapped', type: 'hmac-sha256', protection: 'wrapped' },
  { name: 'ec-wrapped', type: 'ec-p256', protection: 'wrapped' },
  { name: 'rsa-wrapped', type: 'rsa-2048', protection: 'wrapped' },
  // Lives only in the token: lost with it, and reported as lost.
  { name: 'aes-hsm', type: 'aes256-gcm', protection: 'hsm' },
] as const;
const SECRET_PATHS = ['app/db', 'app/api', 'team/cert'];
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

const cleanups: Array<() => unknown> = [];
const work = tempDir('keyhold-recovery-');
/** Where the test keeps the printed shares: outside every data dir, as a custodian would. */
const sharesDir = tempDir('keyhold-recovery-shares-');
const tokenA = makeSoftHsmToken('kh-recovery-a');
const envOf = (token: SoftHsmTestToken): NodeJS.ProcessEnv => ({ SOFTHSM2_CONF: token.confPath });

interface Store { dir: string; db: string; audit: string; rootTokenFile: string }
function storeIn(dir: string): Store {
  fs.mkdirSync(dir, { recursive: true });
  return { dir, db: join(dir, 'keyhold.db'), audit: join(dir, 'audit.log'), rootTokenFile: join(dir, 'root-token') };
}
function configFor(store: Store, token: SoftHsmTestToken | { config: object }, name: string): string {
  const file = join(store.dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: store.db } },
    hsm: token.config,
    audit: { path: store.audit },
  }), { mode: 0o600 });
  return file;
}

interface PrintedShares { set: string; threshold: number; shares: Array<{ index: number; share: string }> }
async function init(store: Store, token: SoftHsmTestToken, flags: string[]): Promise<CliResult> {
  return runCliTimed(['init', '--config', configFor(store, token, 'init'), '--root-token-file', store.rootTokenFile, ...flags], envOf(token), 120_000);
}

/** Every record of the SQLite store, hashed; and the seal record's exact bytes. */
function storeState(store: Store): { digest: string; seal: Buffer } {
  const db = new Database(store.db, { readonly: true });
  try {
    const hash = createHash('sha256');
    for (const row of db.prepare('SELECT key, value FROM kv ORDER BY key').all() as Array<{ key: string; value: Buffer }>) hash.update(`${row.key}\0${row.value.length}\0`).update(row.value);
    return { digest: hash.digest('hex'), seal: db.prepare("SELECT value FROM kv WHERE key = 'core/seal'").pluck().get() as Buffer };
  } finally {
    db.close();
  }
}

function writeShares(name: string, shares: string[]): string[] {
  return shares.map((share, i) => {
    const file = join(sharesDir, `${name}-${i}.share`);
    fs.writeFileSync(file, share + '\n', { mode: 0o600 });
    return file;
  });
}
async function migrate(config: string, env: NodeJS.ProcessEnv, shareFiles: string[]): Promise<CliResult> {
  return runCliTimed(['seal', 'migrate', '--config', config, ...shareFiles.flatMap((f) => ['--share-file', f])], env, 120_000);
}

async function ok(server: DevServer, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await call(server.address, method, path, token, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} → ${r.status} ${r.text}`);
  return r.body;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const original = storeIn(join(work, 'store'));
let printed: PrintedShares;
let initRun: CliResult;
let rootToken = '';
let oldPublicKeyPem = '';
let oldChainHead: { chain: string; seq: number; hash: string };
let otherStoreShares: string[] = [];
const serverOutputs: string[] = [];
const ciphertexts: Array<{ key: string; ciphertext: string; plaintext: string; context?: string }> = [];
const signatures: Array<{ key: string; input: string; signature: string }> = [];
const secretVersions: Array<{ path: string; version: number; value: string }> = [];

before(async () => {
  initRun = await init(original, tokenA, ['--recovery-shares', '5', '--recovery-threshold', '3']);
  assert.equal(initRun.code, 0, initRun.stderr);
  printed = (JSON.parse(initRun.stdout) as { recoveryShares: PrintedShares }).recoveryShares;
  rootToken = fs.readFileSync(original.rootTokenFile, 'utf8').trim();

  const server = await startServer(configFor(original, tokenA, 'server-a'), envOf(tokenA), original.dir);
  try {
    for (const key of KEYS) await ok(server, rootToken, 'POST', '/v1/keys', key);
    await ok(server, rootToken, 'POST', '/v1/keys/aes-wrapped/rotate');
    await ok(server, rootToken, 'POST', '/v1/keys/rsa-wrapped/rotate');
    for (const key of ['aes-wrapped', 'rsa-wrapped', 'aes-hsm']) {
      const context = key.startsWith('aes') ? b64('ctx') : undefined;
      const plaintext = b64(`plain for ${key}`);
      const enc = await ok(server, rootToken, 'POST', `/v1/keys/${key}/encrypt`, { plaintext, ...(context ? { context } : {}) });
      ciphertexts.push({ key, ciphertext: enc.ciphertext, plaintext, context });
    }
    for (const key of ['hmac-wrapped', 'ec-wrapped']) {
      const input = b64(`signed by ${key}`);
      signatures.push({ key, input, signature: (await ok(server, rootToken, 'POST', `/v1/keys/${key}/sign`, { input })).signature });
    }
    for (const [i, path] of SECRET_PATHS.entries()) {
      for (let v = 1; v <= i + 2; v++) {
        const value = `${path}-value-${v}`;
        const r = await ok(server, rootToken, 'PUT', `/v1/secrets/${path}`, { data: { value } });
        secretVersions.push({ path, version: r.version as number, value });
      }
    }
    await ok(server, rootToken, 'PUT', '/v1/policies/readers', { rules: [{ path: 'secrets/app/*', capabilities: ['read'] }] });
    oldPublicKeyPem = (await ok(server, rootToken, 'GET', '/v1/sys/audit/public-key')).public_key_pem as string;
  } finally {
    await server.stop();
    serverOutputs.push(server.output());
  }
  const lines = fs.readFileSync(original.audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number; hash: string; data?: Record<string, string> });
  const last = lines[lines.length - 1] as { seq: number; hash: string };
  oldChainHead = { chain: String(lines[0]?.data?.chain ?? ''), seq: last.seq, hash: last.hash };

  // Another store with recovery shares of its own (same token: labels never collide).
  const other = storeIn(join(work, 'other'));
  const otherRun = await init(other, tokenA, ['--recovery-shares', '3', '--recovery-threshold', '2']);
  assert.equal(otherRun.code, 0, otherRun.stderr);
  otherStoreShares = (JSON.parse(otherRun.stdout) as { recoveryShares: PrintedShares }).recoveryShares.shares.map((s) => s.share);

  // The HSM is lost for good: its SoftHSM token directory is deleted.
  for (const entry of fs.readdirSync(join(tokenA.dir, 'tokens'))) fs.rmSync(join(tokenA.dir, 'tokens', entry), { recursive: true, force: true });
});

after(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  for (const dir of [work, sharesDir, tokenA.dir]) fs.rmSync(dir, { recursive: true, force: true });
});

describe('keyhold init --recovery-shares 5 --recovery-threshold 3', () => {
  it('prints 5 distinct shares once, on stdout, and says that none is kept', () => {
    assert.equal(printed.threshold, 3);
    assert.equal(printed.shares.length, 5);
    assert.deepEqual(printed.shares.map((s) => s.index), [1, 2, 3, 4, 5]);
    assert.equal(new Set(printed.shares.map((s) => s.share)).size, 5);
    for (const s of printed.shares) assert.match(s.share, new RegExp(`^khs1\\.${printed.set}\\.${s.index}\\.[A-Za-z0-9_-]+\\.[0-9a-f]{8}$`));
    assert.match(initRun.stderr, /printed above, ONCE/);
    assert.ok(!initRun.stderr.includes(printed.shares[0]?.share ?? '?'));
  });

  it('keeps only ciphertext in the seal record, and no HSM wrap key (wrapped material is wrapped in the barrier)', () => {
    const seal = JSON.parse(storeState(original).seal.toString('utf8'));
    assert.deepEqual(Object.keys(seal.recovery).sort(), ['keyCheck', 'setId', 'shares', 'threshold', 'version', 'wrappedRootKey']);
    assert.equal(seal.recovery.shares, 5);
    assert.equal(seal.recovery.threshold, 3);
    assert.deepEqual(seal.wrap, { mode: 'memory' });
    assert.equal(seal.version, 2);
    assert.equal(seal.method, 'aes-gcm');
  });

  it('the old config no longer starts once the token is gone', async () => {
    const r = await runCliTimed(['server', '--config', configFor(original, tokenA, 'server-a')], envOf(tokenA), 60_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERR_HSM_TOKEN_NOT_FOUND/);
  });
});

describe('keyhold init with bad share counts', () => {
  const cases: Array<{ flags: string[]; message: RegExp }> = [
    { flags: ['--recovery-shares', '5', '--recovery-threshold', '1'], message: /2 ≤ threshold ≤ shares ≤ 255/ },
    { flags: ['--recovery-shares', '3', '--recovery-threshold', '4'], message: /2 ≤ threshold ≤ shares ≤ 255/ },
    { flags: ['--recovery-shares', '256', '--recovery-threshold', '3'], message: /2 ≤ threshold ≤ shares ≤ 255/ },
    { flags: ['--recovery-shares', 'five', '--recovery-threshold', '3'], message: /--recovery-shares must be a whole number/ },
    { flags: ['--recovery-shares', '5'], message: /--recovery-shares and --recovery-threshold go together/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.flags.join(' ')} and initialises nothing`, async () => {
      const token = makeSoftHsmToken(`kh-bad-${cases.indexOf(c)}`);
      const store = storeIn(tempDir('keyhold-recovery-bad-'));
      const r = await init(store, token, c.flags);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /ERR_CONFIG/);
      assert.match(r.stderr, c.message);
      assert.equal(r.stdout, '');
      assert.deepEqual(fs.readdirSync(store.dir).filter((f) => f !== 'init.json'), [], 'a store, root token or audit log was written');
      fs.rmSync(store.dir, { recursive: true, force: true });
      fs.rmSync(token.dir, { recursive: true, force: true });
    });
  }
});

/**
 * A migrated copy of the store: migrated with `indices` (1-based), then served by a real server on a
 * new token: a SoftHSM token (AES-GCM: the seal stays AES-GCM), or the one member of a p11-kit fleet
 * (RSA/EC only: the seal becomes RSA-OAEP).
 */
function migratedCase(name: string, indices: number[], via: 'files' | 'stdin', refusals: boolean, target: 'softhsm' | 'p11-kit' = 'softhsm'): void {
  describe(`keyhold seal migrate with shares ${indices.join(', ')} (${via}), then a server on the new ${target === 'p11-kit' ? 'RSA/EC-only token behind p11-kit' : 'token'}`, () => {
    const store = storeIn(join(work, name));
    const tokenLabel = `kh-recovery-${name}`;
    let env: NodeJS.ProcessEnv = {};
    let fleet: P11KitFleet | undefined;
    let config = '';
    let run: CliResult;
    let result: any;
    let server: DevServer | undefined;

    before(async () => {
      // A copy of the stopped store (the SQLite file and its audit log) as the token was lost.
      fs.cpSync(original.dir, store.dir, { recursive: true });
      if (target === 'p11-kit') {
        fleet = await startP11KitFleet(1, tokenLabel);
        const member = fleet.members[0] as P11KitMember;
        const tokenDir = fleet.token.dir;
        config = configFor(store, { config: { module: member.module, tokenLabel: fleet.token.label, pinFile: fleet.token.pinFile } }, 'server-new');
        env = { ...member.config.env };
        cleanups.push(() => fs.rmSync(tokenDir, { recursive: true, force: true }));
      } else {
        const token = makeSoftHsmToken(tokenLabel);
        config = configFor(store, token, 'server-new');
        env = envOf(token);
        cleanups.push(() => fs.rmSync(token.dir, { recursive: true, force: true }));
      }
    });
    after(async () => {
      if (server) {
        await server.stop();
        serverOutputs.push(server.output());
      }
      await fleet?.stop();
    });

    if (refusals) {
      const share = (i: number): string => printed.shares[i - 1]?.share ?? '';
      const forged = (): string => {
        // Well-formed, with a valid checksum, but not a share of this set: only the key check can tell.
        const [prefix, set, position, body] = share(2).split('.') as [string, string, string, string];
        const bytes = Buffer.from(body, 'base64url');
        bytes[0] = (bytes[0] ?? 0) ^ 0x01;
        const check = createHash('sha256').update(`keyhold/recovery-share/v1\0${set}\0${position}\0`).update(bytes).digest('hex').slice(0, 8);
        return [prefix, set, position, bytes.toString('base64url'), check].join('.');
      };
      const corrupted = (): string => {
        const s = share(3);
        const at = s.length - 14;
        return s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
      };
      const refused: Array<{ what: string; shares: () => string[]; message: RegExp }> = [
        { what: 'two shares', shares: () => [share(1), share(2)], message: /2 distinct share\(s\) given, but this store needs 3 of its 5/ },
        { what: 'a duplicated share', shares: () => [share(1), share(2), share(1)], message: /is the same share as/ },
        { what: 'a share of another store', shares: () => [share(1), share(2), otherStoreShares[0] ?? ''], message: /belongs to another store's recovery set/ },
        { what: 'a corrupted share', shares: () => [share(1), share(2), corrupted()], message: /is corrupted/ },
        { what: 'a well-formed wrong share', shares: () => [share(1), forged(), share(3)], message: /do not combine to this store's recovery key/ },
        { what: 'no share at all', shares: () => ['not a share'], message: /is not a keyhold recovery share/ },
      ];
      for (const c of refused) {
        it(`refuses ${c.what} (ERR_RECOVERY_SHARES) and writes nothing`, async () => {
          const before = storeState(store);
          const r = await migrate(config, env, writeShares(`${name}-refused-${refused.indexOf(c)}`, c.shares()));
          assert.equal(r.code, 1, r.stdout);
          assert.match(r.stderr, /ERR_RECOVERY_SHARES/);
          assert.match(r.stderr, c.message);
          assert.match(r.stderr, /nothing was written/);
          const now = storeState(store);
          assert.ok(now.seal.equals(before.seal), 'the seal record changed');
          assert.equal(now.digest, before.digest, 'the store changed');
        });
      }
    }

    it('migrates, and reports the hsm-protected key as lost', async () => {
      const chosen = indices.map((i) => printed.shares[i - 1]?.share ?? '');
      if (via === 'files') {
        run = await migrate(config, env, writeShares(name, chosen));
      } else {
        const r = spawnSync(process.execPath, [CLI, 'seal', 'migrate', '--config', config], { env: { ...process.env, ...env }, input: chosen.join('\n') + '\n', encoding: 'utf8', timeout: 120_000 });
        run = { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: 0 };
      }
      assert.equal(run.code, 0, run.stderr);
      result = JSON.parse(run.stdout);
      assert.equal(result.migrated, true);
      assert.equal(result.to.tokenLabel, tokenLabel);
      assert.deepEqual([...result.recoveredKeys].sort(), KEYS.filter((k) => k.protection === 'wrapped').map((k) => k.name).sort());
      assert.deepEqual(result.lostKeys.map((k: { name: string }) => k.name), ['aes-hsm']);
      assert.match(result.lostKeys[0].why, /only inside the lost token/);
      assert.equal(result.audit.oldPublicKeyPem, oldPublicKeyPem);
      assert.match(run.stderr, /could not be recovered.*aes-hsm/);
      const seal = JSON.parse(storeState(store).seal.toString('utf8'));
      assert.equal(seal.sealKeyLabel, result.to.sealKeyLabel);
      assert.equal(seal.tokenSerial, result.to.tokenSerial);
      assert.equal(seal.recovery.setId, printed.set);
      // Sealed as the new token can: AES-GCM on SoftHSM, RSA-OAEP (signed record) through the hop; the wrap stays in memory.
      assert.equal(seal.version, 2);
      assert.equal(seal.method, target === 'p11-kit' ? 'rsa-oaep' : 'aes-gcm');
      if (target === 'p11-kit') assert.ok(seal.publicKeySpki && seal.signature);
      assert.deepEqual(seal.wrap, { mode: 'memory' });
    });

    it('serves every wrapped key (old ciphertexts and signatures, new operations), every secret version and the policy', async () => {
      server = await startServer(config, env, store.dir);
      assert.equal((await call(server.address, 'GET', '/v1/sys/health')).status, 200);
      for (const c of ciphertexts.filter((x) => x.key !== 'aes-hsm')) {
        const ctx = c.context ? { context: c.context } : {};
        assert.equal((await ok(server, rootToken, 'POST', `/v1/keys/${c.key}/decrypt`, { ciphertext: c.ciphertext, ...ctx })).plaintext, c.plaintext, c.key);
        const fresh = await ok(server, rootToken, 'POST', `/v1/keys/${c.key}/encrypt`, { plaintext: c.plaintext, ...ctx });
        assert.equal((await ok(server, rootToken, 'POST', `/v1/keys/${c.key}/decrypt`, { ciphertext: fresh.ciphertext, ...ctx })).plaintext, c.plaintext);
      }
      for (const s of signatures) {
        assert.equal((await ok(server, rootToken, 'POST', `/v1/keys/${s.key}/verify`, { input: s.input, signature: s.signature })).valid, true, s.key);
        const again = await ok(server, rootToken, 'POST', `/v1/keys/${s.key}/sign`, { input: s.input });
        assert.equal((await ok(server, rootToken, 'POST', `/v1/keys/${s.key}/verify`, { input: s.input, signature: again.signature })).valid, true);
      }
      // Rotation still works: new material wrapped by the barrier's wrap key.
      await ok(server, rootToken, 'POST', '/v1/keys/aes-wrapped/rotate');
      for (const v of secretVersions) {
        assert.equal((await ok(server, rootToken, 'GET', `/v1/secrets/${v.path}?version=${v.version}`)).data.value, v.value, `${v.path} v${v.version}`);
      }
      await ok(server, rootToken, 'PUT', '/v1/secrets/app/after', { data: { value: 'after migration' } });
      assert.deepEqual((await ok(server, rootToken, 'GET', '/v1/policies/readers')).rules, [{ path: 'secrets/app/*', capabilities: ['read'] }]);
    });

    it('refuses the lost hsm-protected key with a clear error, not a crash', async () => {
      const c = ciphertexts.find((x) => x.key === 'aes-hsm');
      const r = await call(server?.address ?? '', 'POST', '/v1/keys/aes-hsm/decrypt', rootToken, { ciphertext: c?.ciphertext, context: c?.context });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.error.code, 'ERR_HSM_KEY_MISSING');
    });

    it('continues the audit trail: a new chain, signed by a new key on the new token, linked to the old chain, which still verifies with the old key', async () => {
      const newPem = (await ok(server as DevServer, rootToken, 'GET', '/v1/sys/audit/public-key')).public_key_pem as string;
      assert.notEqual(newPem, oldPublicKeyPem);
      await server?.stop();
      serverOutputs.push(server?.output() ?? '');
      server = undefined;
      const newKey = join(store.dir, 'audit-new.pem');
      const oldKey = join(store.dir, 'audit-old.pem');
      fs.writeFileSync(newKey, newPem);
      fs.writeFileSync(oldKey, result.audit.oldPublicKeyPem as string);
      const current = await runCliTimed(['audit', 'verify', '--file', store.audit, '--public-key', newKey], {}, 60_000);
      assert.equal(current.code, 0, current.stdout + current.stderr);
      assert.equal(JSON.parse(current.stdout).ok, true);
      const start = JSON.parse(fs.readFileSync(store.audit, 'utf8').split('\n')[0] as string) as { type: string; data: Record<string, string | number> };
      assert.equal(start.data.reason, 'seal-migrate');
      assert.equal(start.data.previousChain, oldChainHead.chain);
      assert.equal(start.type, 'chain-start');
      assert.equal(Number(start.data.previousHeadSeq), oldChainHead.seq);
      assert.equal(start.data.previousHeadHash, oldChainHead.hash);
      assert.equal(start.data.previousState, 'intact');
      assert.equal(start.data.sealToTokenLabel, tokenLabel);
      assert.equal(start.data.lostKeyNames, 'aes-hsm');
      const oldFiles = fs.readdirSync(store.dir).filter((f) => f.startsWith('audit.log.abandoned-'));
      assert.equal(oldFiles.length, 1);
      const old = await runCliTimed(['audit', 'verify', '--file', join(store.dir, oldFiles[0] as string), '--public-key', oldKey], {}, 60_000);
      assert.equal(old.code, 0, old.stdout + old.stderr);
      // The migration was recorded once: the next start continues the new chain.
      const again = await startServer(config, env, store.dir);
      assert.equal((await call(again.address, 'GET', '/v1/sys/health')).status, 200);
      await again.stop();
      serverOutputs.push(again.output());
      const verifyAgain = await runCliTimed(['audit', 'verify', '--file', store.audit, '--public-key', newKey], {}, 60_000);
      assert.equal(verifyAgain.code, 0, verifyAgain.stdout + verifyAgain.stderr);
      assert.equal(fs.readdirSync(store.dir).filter((f) => f.startsWith('audit.log.abandoned-')).length, 1);
    });
  });
}

migratedCase('b', [1, 3, 5], 'files', true);
migratedCase('c', [4, 2, 5], 'stdin', false);
migratedCase('d', [2, 5, 1], 'files', false, 'p11-kit');

describe('shares are printed once and stored nowhere', () => {
  it('no share, share body or recovery key is in any data dir file (store, WAL, audit logs) or server output', async () => {
    const shares = printed.shares.map((s) => s.share);
    const bodies = shares.map((s) => s.split('.')[3] as string);
    const raw = bodies.map((b) => Buffer.from(b, 'base64url'));
    const recoveryKey = Buffer.from(await combine(raw.slice(0, 3).map((b) => new Uint8Array(b))));
    const needles: Buffer[] = [];
    for (const secret of [...raw, recoveryKey]) {
      needles.push(secret, Buffer.from(secret.toString('base64')), Buffer.from(secret.toString('base64url')), Buffer.from(secret.toString('hex')));
    }
    for (const s of [...shares, ...bodies]) needles.push(Buffer.from(s));
    const files = filesUnder(work);
    assert.ok(files.some((f) => f.endsWith('keyhold.db')) && files.some((f) => f.includes('audit.log')));
    for (const file of files) {
      const bytes = fs.readFileSync(file);
      for (const needle of needles) assert.ok(!bytes.includes(needle), `a share or the recovery key is in ${file}`);
    }
    for (const output of serverOutputs) for (const s of [...shares, ...bodies]) assert.ok(!output.includes(s), 'a share is in a server log');
  });
});
