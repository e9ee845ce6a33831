import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKeyholdError } from '../../../src/errors.js';
import { postgresOptions, type PostgresConfig } from '../../../src/storage/postgres-config.js';
import { PostgresStorage } from '../../../src/storage/postgres.js';
import { makeTestCa, startPostgres, type TestPostgres } from '../../helpers/postgres.js';

describe('PostgreSQL over TLS', () => {
  let server: TestPostgres;
  let wrongCa: string;
  let dir: string;

  before(async () => {
    server = await startPostgres({ tls: true });
    dir = mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), 'keyhold-pgtls-'));
    wrongCa = makeTestCa(dir, 'other-ca').certFile;
  });
  after(() => {
    server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (tls: PostgresConfig['tls'], url = server.url): PostgresConfig => ({ url, passwordFile: server.passwordFile, ...(tls ? { tls } : {}) });
  const open = (c: PostgresConfig) => PostgresStorage.open({ ...postgresOptions(c), connectTimeoutMs: 3000 });

  /** Opens, checks the session is encrypted, writes and reads. */
  async function usable(c: PostgresConfig): Promise<void> {
    const s = await open(c);
    try {
      const { rows } = await s.pool.query('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.equal(rows[0]?.ssl, true, 'the session is not encrypted');
      await s.put('k', Buffer.from('v'));
      assert.deepEqual(await s.get('k'), Buffer.from('v'));
    } finally {
      await s.close();
    }
  }

  const refusedForCertificate = (err: unknown): boolean =>
    isKeyholdError(err) && err.code.startsWith('ERR_STORAGE') && /certificate|altnames|self.signed|verify/i.test(err.message);

  it('verify-full succeeds with the CA that issued the server certificate, by IP and by host name', async () => {
    assert.ok(server.caFile);
    await usable(config({ caFile: server.caFile }));
    await usable(config({ caFile: server.caFile }, server.url.replace('127.0.0.1', 'localhost')));
  });

  it('fails against a certificate from another CA, and against the system CAs', async () => {
    await assert.rejects(() => open(config({ caFile: wrongCa })), refusedForCertificate);
    await assert.rejects(() => open(config({})), refusedForCertificate);
  });

  it('fails when the certificate does not name the server (serverName), and succeeds when it does', async () => {
    await assert.rejects(() => open(config({ caFile: server.caFile, serverName: 'db.example.com' })), refusedForCertificate);
    await usable(config({ caFile: server.caFile, serverName: 'localhost' }));
  });

  it('rejectUnauthorized: false encrypts without verifying (an explicit opt-out)', async () => {
    await usable(config({ caFile: wrongCa, rejectUnauthorized: false }));
  });

  it('without tls the session is plain (the option is what turns TLS on)', async () => {
    const s = await open(config(undefined));
    try {
      const { rows } = await s.pool.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.equal(rows[0]?.ssl, false);
    } finally {
      await s.close();
    }
  });
});
