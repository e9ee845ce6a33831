/**
 * A real keyhold server process on a real PostgreSQL: `keyhold init`, writes, a restart of the
 * server, reads back; PostgreSQL going away mid-service gives 503 (never 500) and service resumes
 * by itself; `keyhold dev` on PostgreSQL.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg_ from 'pg';
import { stringify } from 'yaml';
import { parsePostgresUrl } from '../../../src/storage/postgres-config.js';
import { makeSoftHsmToken, type SoftHsmTestToken } from '../../helpers/softhsm.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { call, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from './support.js';
import { sleep } from '../../helpers/processes.js';

const PgClient = pg_.Client;

describe('keyhold server on PostgreSQL', () => {
  let pg: TestPostgres;
  let token: SoftHsmTestToken;
  let dir: string;
  let configFile: string;
  let env: NodeJS.ProcessEnv;
  let server: DevServer | undefined;

  before(async () => {
    pg = await startPostgres();
    token = makeSoftHsmToken();
    dir = tempDir('keyhold-pgserver-');
    env = { SOFTHSM2_CONF: token.confPath };
    configFile = join(dir, 'keyhold.yaml');
    writeFileSync(configFile, stringify({
      listen: '127.0.0.1:0',
      storage: { postgres: { url: pg.url, passwordFile: pg.passwordFile, pool: { max: 4 }, statementTimeoutMs: 3000 } },
      hsm: token.config,
      // No audit.path: on PostgreSQL the audit log is the database's table.
      audit: { checkpointIntervalSeconds: 1 },
    }));
  });
  after(async () => {
    await server?.stop();
    pg?.destroy();
  });

  it('init, write keys and secrets, restart the server, read them back', async () => {
    const rootTokenFile = join(dir, 'root-token');
    // Not initialised yet: the server refuses to start.
    const early = await runCliTimed(['server', '--config', configFile], env);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /ERR_NOT_INITIALIZED/);
    const init = await runCliTimed(['init', '--config', configFile, '--root-token-file', rootTokenFile], env, 30_000);
    assert.equal(init.code, 0, init.stderr);
    // The password is read from its file, never passed on a command line or printed.
    assert.ok(!init.stderr.includes(pg.password));
    const root = readFileSync(rootTokenFile, 'utf8').trim();

    server = await startServer(configFile, env);
    const created = await call(server.address, 'POST', '/v1/keys', root, { name: 'app', type: 'aes256-gcm', protection: 'hsm' });
    assert.equal(created.status, 200, created.text);
    const enc = await call(server.address, 'POST', '/v1/keys/app/encrypt', root, { plaintext: Buffer.from('attack at dawn').toString('base64') });
    assert.equal(enc.status, 200, enc.text);
    const secretValue = 'pg-secret-value-4f1c';
    const put = await call(server.address, 'PUT', '/v1/secrets/team/db', root, { data: { password: secretValue } });
    assert.equal(put.status, 200, put.text);
    assert.equal((await call(server.address, 'PUT', '/v1/secrets/team/db', root, { data: { password: 'second' } })).status, 200);
    assert.equal(await server.stop(), 0);
    server = undefined;

    // The data is in PostgreSQL, under the barrier: no plaintext in any row.
    const rows = (await pg.admin('SELECT key, value FROM kv')).rows as { key: Buffer; value: Buffer }[];
    assert.ok(rows.length > 0);
    assert.ok(rows.every((r) => !r.value.includes(secretValue) && !r.value.includes('attack at dawn')));

    server = await startServer(configFile, env);
    const v1 = await call(server.address, 'GET', '/v1/secrets/team/db?version=1', root);
    assert.equal(v1.status, 200, v1.text);
    assert.equal(v1.body.data.password, secretValue);
    const latest = await call(server.address, 'GET', '/v1/secrets/team/db', root);
    assert.equal(latest.body.data.password, 'second');
    const dec = await call(server.address, 'POST', '/v1/keys/app/decrypt', root, { ciphertext: enc.body.ciphertext });
    assert.equal(dec.status, 200, dec.text);
    assert.equal(Buffer.from(dec.body.plaintext, 'base64').toString(), 'attack at dawn');
    assert.ok(!server.output().includes(pg.password));
  });

  it('answers 503 with Retry-After, never 500, while PostgreSQL is down, and recovers by itself', async () => {
    assert.ok(server, 'runs after the first case');
    const root = readFileSync(join(dir, 'root-token'), 'utf8').trim();
    pg.stop('immediate');
    try {
      const write = await call(server.address, 'PUT', '/v1/secrets/during/outage', root, { data: { a: '1' } });
      assert.equal(write.status, 503, write.text);
      assert.equal(write.body.error.code, 'ERR_STORAGE_UNAVAILABLE');
      const res = await fetch(`${server.address}/v1/secrets/never/read`, { headers: { authorization: `Bearer ${root}` } });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '1');
    } finally {
      pg.start();
    }
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await call(server.address, 'PUT', '/v1/secrets/after/outage', root, { data: { a: '2' } })).status;
      if (status !== 200) await sleep(100);
    }
    assert.equal(status, 200);
    // Right after the database is back the change feed may still be reconnecting: until it listens
    // again a cache hit is refused with 503 (retry), never answered stale and never 500.
    let read = await call(server.address, 'GET', '/v1/secrets/after/outage', root);
    for (let i = 0; i < 50 && read.status === 503; i++) {
      await sleep(100);
      read = await call(server.address, 'GET', '/v1/secrets/after/outage', root);
    }
    assert.equal(read.status, 200, read.text);
    assert.equal(read.body.data.a, '2');
    assert.equal((await call(server.address, 'GET', '/v1/secrets/during/outage', root)).status, 404);
  });

  it('keyhold dev runs on PostgreSQL when KEYHOLD_STORAGE_POSTGRES_URL is set', async () => {
    const url = await pg.createDatabase('dev');
    const dev = await startDev(tempDir('keyhold-pgdev-'), { KEYHOLD_STORAGE_POSTGRES_URL: url, KEYHOLD_STORAGE_POSTGRES_PASSWORD_FILE: pg.passwordFile });
    try {
      assert.match(dev.output(), /PostgreSQL/);
      assert.equal((await call(dev.address, 'PUT', '/v1/secrets/dev/x', dev.rootToken, { data: { a: '1' } })).status, 200);
    } finally {
      await dev.stop();
    }
    // Its records are in that database, not in a SQLite file of the data dir.
    const client = new PgClient({ ...parsePostgresUrl(url), password: pg.password });
    await client.connect();
    try {
      assert.ok(((await client.query('SELECT count(*)::int AS n FROM kv')).rows[0] as { n: number }).n > 0);
    } finally {
      await client.end();
    }
    assert.ok(!existsSync(join(dev.dataDir, 'keyhold.db')));
  });
});
