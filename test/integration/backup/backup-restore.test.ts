import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { postgresOptions, type PostgresConfig } from '../../../src/storage/postgres-config.js';
import { PostgresStorage } from '../../../src/storage/postgres.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { call, devServerConfig, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed, type CliResult } from '../server/support.js';

/**
 * keyhold backup against a real `keyhold dev` server (SoftHSM token, SQLite) under a write load,
 * and keyhold restore into fresh stores that a real server then serves from.
 *
 * A restore target is a config `storage` section for a fresh, empty store, and a way to read that
 * store back: adding a storage backend (PostgreSQL) is one more entry in TARGETS.
 */
interface RestoreTarget {
  name: string;
  /** The `storage:` config section of a new, empty store; `dir` is a fresh folder for it. */
  storage(dir: string): Promise<Record<string, unknown>>;
  /** SHA-256 over every record of the store the section names (to show a refused restore wrote nothing). */
  digest(section: Record<string, unknown>): Promise<string>;
}

async function digestOf(storage: { snapshot(): AsyncIterable<{ key: string; value: Buffer }>; close(): Promise<void> }): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const { key, value } of storage.snapshot()) hash.update(`${key}\0${value.length}\0`).update(value);
  } finally {
    await storage.close();
  }
  return hash.digest('hex');
}

const TARGETS: RestoreTarget[] = [
  {
    name: 'SQLite',
    storage: async (dir) => ({ sqlite: { path: join(dir, 'keyhold.db') } }),
    digest: async (section) => digestOf(SqliteStorage.open((section.sqlite as { path: string }).path)),
  },
  {
    name: 'PostgreSQL',
    // One real PostgreSQL server for the file; a new, empty database per target store.
    storage: async () => {
      postgres ??= startPostgres().then((pg) => { cleanups.push(() => pg.destroy()); return pg; });
      const server = await postgres;
      const url = await server.createDatabase(`restore_${++databases}`);
      return { postgres: { url, passwordFile: server.passwordFile } };
    },
    digest: async (section) => digestOf(await PostgresStorage.open(postgresOptions(section.postgres as PostgresConfig))),
  },
];
let postgres: Promise<TestPostgres> | undefined;
let databases = 0;

const srcDir = tempDir('keyhold-backup-src-');
const backupDir = tempDir('keyhold-backup-out-');
const backupFile = join(backupDir, 'keyhold.backup');
/** The dev token: the HSM that sealed the source store (and so the backup). */
const devHsmEnv = { SOFTHSM2_CONF: join(srcDir, 'softhsm2.conf') };
let source: DevServer;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

async function ok(server: DevServer, method: string, path: string, body?: unknown): Promise<any> {
  const r = await call(server.address, method, path, server.rootToken || source.rootToken, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} → ${r.status} ${r.text}`);
  return r.body;
}

function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'server.json');
  fs.writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}

/** A server config on the dev token, over the given store, with its own audit log. */
function configFor(dir: string, storage: Record<string, unknown>, hsm?: Record<string, unknown>): string {
  const base = devServerConfig(srcDir);
  // On PostgreSQL the audit log is the database's table: no file.
  const audit = storage.postgres ? {} : { path: join(dir, 'audit.log') };
  return writeConfig(dir, { ...base, storage, audit, ...(hsm ? { hsm } : {}) });
}

const KEYS = [
  { name: 'aes-hsm', type: 'aes256-gcm', protection: 'hsm' },
  { name: 'aes-wrapped', type: 'aes256-gcm', protection: 'wrapped' },
  { name: 'ec-hsm', type: 'ec-p256', protection: 'hsm' },
  { name: 'hmac-wrapped', type: 'hmac-sha256', protection: 'wrapped' },
  { name: 'rsa-wrapped', type: 'rsa-2048', protection: 'wrapped' },
] as const;
const SECRET_PATHS = Array.from({ length: 12 }, (_, i) => `app/s${i}`);

const ciphertexts: Array<{ key: string; ciphertext: string; plaintext: string; context?: string }> = [];
const signatures: Array<{ key: string; input: string; signature: string }> = [];
/** Every load write the source acknowledged: path, version, value, when. */
const acked: Array<{ path: string; version: number; value: string; at: number }> = [];
let backupRun: CliResult;
let backupStartedAt = 0;
let backupEndedAt = 0;

before(async () => {
  source = await startDev(srcDir);
  cleanups.push(() => source.stop());
  for (const key of KEYS) await ok(source, 'POST', '/v1/keys', key);
  await ok(source, 'POST', '/v1/keys/aes-hsm/rotate');
  await ok(source, 'POST', '/v1/keys/aes-wrapped/rotate');
  for (const [i, path] of SECRET_PATHS.entries()) {
    for (let v = 0; v <= i % 3; v++) await ok(source, 'PUT', `/v1/secrets/${path}`, { data: { value: `${path}-v${v}`, n: i } });
  }
  await ok(source, 'DELETE', `/v1/secrets/${SECRET_PATHS[2]}`);
  await ok(source, 'PUT', '/v1/policies/readers', { rules: [{ path: 'secrets/app/*', capabilities: ['read'] }] });
  for (const key of ['aes-hsm', 'aes-wrapped', 'rsa-wrapped']) {
    const context = key.startsWith('aes') ? b64('ctx') : undefined;
    const plaintext = b64(`plain for ${key}`);
    const enc = await ok(source, 'POST', `/v1/keys/${key}/encrypt`, { plaintext, ...(context ? { context } : {}) });
    ciphertexts.push({ key, ciphertext: enc.ciphertext, plaintext, context });
  }
  for (const key of ['ec-hsm', 'hmac-wrapped']) {
    const input = b64(`signed by ${key}`);
    signatures.push({ key, input, signature: (await ok(source, 'POST', `/v1/keys/${key}/sign`, { input })).signature });
  }

  // Four writers keep writing while the backup runs, and a little after.
  let writing = true;
  const writer = async (w: number): Promise<void> => {
    for (let n = 0; writing; n++) {
      const value = `w${w}-${n}`;
      const r = await call(source.address, 'PUT', `/v1/secrets/load/w${w}`, source.rootToken, { data: { value } });
      assert.equal(r.status, 200, r.text);
      acked.push({ path: `load/w${w}`, version: r.body.version as number, value, at: Date.now() });
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((r) => setTimeout(r, 300));
  const sourceConfig = configFor(srcDir, devServerConfig(srcDir).storage as Record<string, unknown>);
  backupStartedAt = Date.now();
  backupRun = await runCliTimed(['backup', '--config', sourceConfig, '--out', backupFile], {}, 120_000);
  backupEndedAt = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  writing = false;
  await Promise.all(writers);
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const dir of [srcDir, backupDir]) fs.rmSync(dir, { recursive: true, force: true });
});

describe('keyhold backup during a write load', () => {
  it('succeeds while writes are acknowledged, and writes a 0600 file with a manifest', () => {
    assert.equal(backupRun.code, 0, backupRun.stderr);
    const during = acked.filter((a) => a.at > backupStartedAt && a.at < backupEndedAt).length;
    assert.ok(during > 0, 'no write was acknowledged while the backup ran');
    assert.equal(fs.statSync(backupFile).mode & 0o777, 0o600);
    const manifest = JSON.parse(backupRun.stdout);
    assert.equal(manifest.format, 'keyhold-backup');
    assert.equal(manifest.version, 1);
    assert.match(manifest.sha256, /^[0-9a-f]{64}$/);
    assert.equal(manifest.counts.core, 1);
    assert.ok(manifest.counts['data/secrets'] > SECRET_PATHS.length);
    assert.ok(manifest.records > 40);
    // Not a terminal: no progress line, only the result.
    assert.doesNotMatch(backupRun.stderr, /records\/s/);
    assert.deepEqual(fs.readdirSync(backupDir), ['keyhold.backup'], 'a temporary file was left behind');
  });

  it('holds only ciphertext: no secret value or plaintext in the file', () => {
    const bytes = fs.readFileSync(backupFile);
    for (const needle of [`${SECRET_PATHS[1]}-v1`, 'plain for aes-hsm', 'w0-1"', source.rootToken]) {
      assert.ok(!bytes.includes(Buffer.from(needle)), `the backup holds "${needle}"`);
    }
  });
});

for (const target of TARGETS) {
  describe(`keyhold restore into a fresh ${target.name} store`, () => {
    const dir = tempDir('keyhold-restore-');
    let restored: DevServer;
    let section: Record<string, unknown>;
    let config: string;
    let restoreRun: CliResult;

    before(async () => {
      section = await target.storage(dir);
      config = configFor(dir, section);
      restoreRun = await runCliTimed(['restore', '--in', backupFile, '--config', config], devHsmEnv, 120_000);
      assert.equal(restoreRun.code, 0, restoreRun.stderr);
      // The audit log is not in a backup: the restored server starts a new chain, and says so.
      restored = await startServer(config, devHsmEnv, srcDir, ['--new-audit-chain']);
      cleanups.push(() => restored.stop());
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reports what it restored and that it unsealed with the configured HSM', () => {
      const result = JSON.parse(restoreRun.stdout);
      assert.ok(result.restored > 40);
      assert.match(restoreRun.stderr, /unsealed with the configured HSM/);
      assert.match(restoreRun.stderr, /--new-audit-chain/);
    });

    it('serves every key identically: descriptions, old ciphertexts, signatures, and both ways across servers', async () => {
      assert.deepEqual(await ok(restored, 'GET', '/v1/keys'), await ok(source, 'GET', '/v1/keys'));
      for (const key of KEYS) assert.deepEqual(await ok(restored, 'GET', `/v1/keys/${key.name}`), await ok(source, 'GET', `/v1/keys/${key.name}`));
      for (const c of ciphertexts) {
        const dec = await ok(restored, 'POST', `/v1/keys/${c.key}/decrypt`, { ciphertext: c.ciphertext, ...(c.context ? { context: c.context } : {}) });
        assert.equal(dec.plaintext, c.plaintext, c.key);
        // New output of the restored server decrypts on the source: the same key material.
        const fresh = await ok(restored, 'POST', `/v1/keys/${c.key}/encrypt`, { plaintext: c.plaintext, ...(c.context ? { context: c.context } : {}) });
        assert.equal((await ok(source, 'POST', `/v1/keys/${c.key}/decrypt`, { ciphertext: fresh.ciphertext, ...(c.context ? { context: c.context } : {}) })).plaintext, c.plaintext);
      }
      for (const s of signatures) {
        assert.equal((await ok(restored, 'POST', `/v1/keys/${s.key}/verify`, { input: s.input, signature: s.signature })).valid, true, s.key);
        const again = await ok(restored, 'POST', `/v1/keys/${s.key}/sign`, { input: s.input });
        assert.equal((await ok(source, 'POST', `/v1/keys/${s.key}/verify`, { input: s.input, signature: again.signature })).valid, true);
      }
      assert.deepEqual(await ok(restored, 'GET', '/v1/policies/readers'), await ok(source, 'GET', '/v1/policies/readers'));
    });

    it('serves every secret identically: every version, metadata and listings', async () => {
      assert.deepEqual(await ok(restored, 'GET', '/v1/secrets?folder=app'), await ok(source, 'GET', '/v1/secrets?folder=app'));
      for (const path of SECRET_PATHS) {
        const meta = await ok(source, 'GET', `/v1/secret-metadata/${path}`);
        assert.deepEqual(await ok(restored, 'GET', `/v1/secret-metadata/${path}`), meta, path);
        for (const version of Object.keys(meta.versions ?? {})) {
          const a = await call(source.address, 'GET', `/v1/secrets/${path}?version=${version}`, source.rootToken);
          const b = await call(restored.address, 'GET', `/v1/secrets/${path}?version=${version}`, source.rootToken);
          assert.equal(b.status, a.status, `${path} v${version}`);
          assert.deepEqual({ ...b.body, request_id: 0 }, { ...a.body, request_id: 0 }, `${path} v${version}`);
        }
      }
    });

    it('holds the load writes as of one moment: all acknowledged before the backup, none torn', async () => {
      for (const w of [0, 1, 2, 3]) {
        const path = `load/w${w}`;
        const mine = acked.filter((a) => a.path === path);
        const meta = await ok(restored, 'GET', `/v1/secret-metadata/${path}`);
        const current = meta.current_version as number;
        for (const a of mine.filter((x) => x.at < backupStartedAt)) assert.ok(a.version <= current, `${path} v${a.version} was acknowledged before the backup started but is missing`);
        // Old versions beyond the kept count are pruned by keyhold itself; every kept one is as acknowledged.
        const kept = Object.keys(meta.versions as object).map(Number);
        assert.ok(kept.includes(current));
        for (const version of kept) {
          const a = mine.find((x) => x.version === version);
          assert.ok(a, `${path} v${version} was never acknowledged`);
          assert.equal((await ok(restored, 'GET', `/v1/secrets/${path}?version=${version}`)).data.value, a.value, `${path} v${version}`);
        }
        // And the snapshot was taken during the load: the source went on past it.
        assert.ok(mine.some((x) => x.version > current), `${path}: no write after the snapshot`);
      }
    });

    it('refuses the store now that it is not empty (ERR_STORE_NOT_EMPTY) and writes nothing', async () => {
      await restored.stop();
      const before = await target.digest(section);
      const again = await runCliTimed(['restore', '--in', backupFile, '--config', config], devHsmEnv, 60_000);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /ERR_STORE_NOT_EMPTY/);
      assert.equal(await target.digest(section), before);
    });

    it('refuses a tampered backup (ERR_BACKUP_INVALID) and does not create the store', async () => {
      const bytes = fs.readFileSync(backupFile);
      const middle = Math.floor(bytes.length / 2);
      bytes[middle] = (bytes[middle] ?? 0) ^ 0x10;
      const tampered = join(dir, 'tampered.backup');
      fs.writeFileSync(tampered, bytes);
      const fresh = tempDir('keyhold-restore-tampered-');
      const freshSection = await target.storage(fresh);
      const run = await runCliTimed(['restore', '--in', tampered, '--config', configFor(fresh, freshSection)], devHsmEnv, 60_000);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /ERR_BACKUP_INVALID/);
      assert.deepEqual(fs.readdirSync(fresh).filter((f) => f.startsWith('keyhold.db')), []);
      fs.rmSync(fresh, { recursive: true, force: true });
    });

    it('refuses an HSM that did not seal the backup (ERR_HSM_KEY_MISSING) and does not create the store', async () => {
      const other = makeSoftHsmToken('keyhold-other');
      const fresh = tempDir('keyhold-restore-other-hsm-');
      const freshSection = await target.storage(fresh);
      const run = await runCliTimed(['restore', '--in', backupFile, '--config', configFor(fresh, freshSection, { ...other.config })], { SOFTHSM2_CONF: other.confPath }, 60_000);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /ERR_HSM_KEY_MISSING/);
      assert.match(run.stderr, /cannot unseal this backup/);
      assert.deepEqual(fs.readdirSync(fresh).filter((f) => f.startsWith('keyhold.db')), []);
      fs.rmSync(fresh, { recursive: true, force: true });
      fs.rmSync(other.dir, { recursive: true, force: true });
    });
  });
}
