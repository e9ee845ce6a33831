import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startPostgres } from '../../helpers/postgres.js';

test('the test PostgreSQL accepts the keyhold role with its password over loopback TCP, and survives a restart', async () => {
  const server = await startPostgres();
  try {
    const connect = async () => {
      const client = new pg.Client({ connectionString: server.url.replace('keyhold@', `keyhold:${server.password}@`) });
      await client.connect();
      return client;
    };
    let client = await connect();
    assert.equal((await client.query('SELECT current_user AS u')).rows[0].u, 'keyhold');
    await client.query('CREATE TABLE t (x int)');
    await client.query('INSERT INTO t VALUES (1)');
    await client.end();
    server.restart('immediate');
    client = await connect();
    assert.equal((await client.query('SELECT count(*)::int AS n FROM t')).rows[0].n, 1);
    await client.end();
    await assert.rejects(async () => {
      const bad = new pg.Client({ connectionString: server.url.replace('keyhold@', 'keyhold:wrong@') });
      try { await bad.connect(); } finally { await bad.end().catch(() => undefined); }
    }, /password authentication failed/);
  } finally {
    server.destroy();
  }
});
