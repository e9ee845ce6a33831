/** storage.postgres in the server config: what is accepted, what is refused, and where the password comes from. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigFile } from '../../../src/core/config.js';
import { isKeyholdError } from '../../../src/errors.js';
import { parsePostgresUrl, postgresOptions } from '../../../src/storage/postgres-config.js';

describe('config: storage.postgres', () => {
  const dir = mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), 'keyhold-pgconfig-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (storage: string, audit = '{}') => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, `storage: ${storage}\naudit: ${audit}\nhsm: { module: /x.so, tokenLabel: t, pinEnv: P }\n`);
    return path;
  };
  const configError = (err: unknown): boolean => isKeyholdError(err, 'ERR_CONFIG');

  it('reads the section, resolving its files against the config folder', () => {
    const config = loadConfigFile(file('{ postgres: { url: "postgres://kh@db.example:6432/keyhold", passwordFile: pw, tls: { caFile: ca.pem }, pool: { max: 4 }, statementTimeoutMs: 2000 } }'), {});
    assert.equal(config.storage.sqlite, undefined);
    assert.deepEqual(config.storage.postgres, { url: 'postgres://kh@db.example:6432/keyhold', passwordFile: join(dir, 'pw'), tls: { caFile: join(dir, 'ca.pem') }, pool: { max: 4 }, statementTimeoutMs: 2000 });
  });

  it('wants exactly one of sqlite and postgres', () => {
    assert.throws(() => loadConfigFile(file('{}'), {}), configError);
    assert.throws(() => loadConfigFile(file('{ sqlite: { path: k.db }, postgres: { url: "postgres://kh@h/d" } }'), {}), configError);
  });

  it('has the audit log in the database: audit.path is refused with postgres, required with sqlite', () => {
    assert.throws(() => loadConfigFile(file('{ postgres: { url: "postgres://kh@h/d" } }', '{ path: a.log }'), {}), configError);
    assert.throws(() => loadConfigFile(file('{ sqlite: { path: k.db } }'), {}), configError);
    assert.equal(loadConfigFile(file('{ sqlite: { path: k.db } }', '{ path: a.log }'), {}).audit.path, join(dir, 'a.log'));
  });

  it('refuses a password in the URL without repeating it', () => {
    assert.throws(() => loadConfigFile(file('{ postgres: { url: "postgres://kh:hunter2@h/d" } }'), {}), (err: unknown) => configError(err) && !(err as Error).message.includes('hunter2'));
  });

  it('refuses query parameters (TLS is set under tls), other schemes and incomplete URLs', () => {
    for (const url of ['postgres://kh@h/d?sslmode=disable', 'mysql://kh@h/d', 'postgres://h/d', 'postgres://kh@h', 'postgres://kh@h/d/e', 'not a url']) {
      assert.throws(() => parsePostgresUrl(url), configError, url);
    }
    assert.deepEqual(parsePostgresUrl('postgresql://k%40h@[::1]/my%20db'), { host: '::1', port: 5432, user: 'k@h', database: 'my db' });
  });

  it('takes KEYHOLD_STORAGE_POSTGRES_URL and _PASSWORD_FILE over the file, replacing sqlite', () => {
    const config = loadConfigFile(file('{ sqlite: { path: k.db } }'), { KEYHOLD_STORAGE_POSTGRES_URL: 'postgres://kh@h/d', KEYHOLD_STORAGE_POSTGRES_PASSWORD_FILE: '/run/secrets/pw' });
    assert.deepEqual(config.storage, { postgres: { url: 'postgres://kh@h/d', passwordFile: '/run/secrets/pw' } });
  });

  it('reads the password from the file (one trailing newline dropped) or the named variable', () => {
    const pw = join(dir, 'pw');
    writeFileSync(pw, 's3cret \n', { mode: 0o600 });
    assert.equal(postgresOptions({ url: 'postgres://kh@h/d', passwordFile: pw }).password, 's3cret ');
    assert.equal(postgresOptions({ url: 'postgres://kh@h/d', passwordEnv: 'PGPW' }, { PGPW: 'from-env' }).password, 'from-env');
    assert.throws(() => postgresOptions({ url: 'postgres://kh@h/d', passwordEnv: 'PGPW' }, {}), configError);
    assert.throws(() => postgresOptions({ url: 'postgres://kh@h/d', passwordFile: join(dir, 'missing') }), configError);
    assert.throws(() => postgresOptions({ url: 'postgres://kh@h/d', passwordFile: pw, passwordEnv: 'PGPW' }, { PGPW: 'x' }), configError);
    assert.equal(postgresOptions({ url: 'postgres://kh@h/d' }).password, undefined);
  });

  it('verifies the server by default; certFile and keyFile go together', () => {
    assert.equal(postgresOptions({ url: 'postgres://kh@h/d', tls: {} }).ssl?.rejectUnauthorized, true);
    assert.throws(() => postgresOptions({ url: 'postgres://kh@h/d', tls: { certFile: '/x.crt' } }), configError);
  });
});
