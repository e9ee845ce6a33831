/**
 * The audit log in PostgreSQL: a request's record commits in the same transaction as its write,
 * a write whose audit insert fails is rolled back (and the client gets an error, not an
 * acknowledgement), and `keyhold audit verify --config` checks the chains in the table.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { sleep } from '../../helpers/processes.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from './support.js';

interface Row { chain: string; seq: string; entry: string }
const parsed = (rows: Row[]) => rows.map((r) => ({ chain: r.chain, seq: Number(r.seq), ...JSON.parse(r.entry) as { type: string; requestId?: string; path?: string; outcome?: { status: number; code?: string } } }));

describe('audit log in PostgreSQL', () => {
  let pg: TestPostgres;
  let dir: string;
  let configFile: string;
  let env: NodeJS.ProcessEnv;
  let server: DevServer;
  let root: string;

  const auditRows = async (where = 'true') => parsed((await pg.admin(`SELECT chain, seq, entry FROM audit WHERE ${where} ORDER BY chain, seq`)).rows as Row[]);

  before(async () => {
    pg = await startPostgres();
    const token = makeSoftHsmToken();
    dir = tempDir('keyhold-pgaudit-');
    env = { SOFTHSM2_CONF: token.confPath };
    configFile = join(dir, 'keyhold.yaml');
    writeFileSync(configFile, stringify({
      listen: '127.0.0.1:0',
      storage: { postgres: { url: pg.url, passwordFile: pg.passwordFile } },
      hsm: token.config,
      audit: { checkpointIntervalSeconds: 1, mirrorDir: join(dir, 'audit-copies') },
    }));
    const init = await runCliTimed(['init', '--config', configFile, '--root-token-file', join(dir, 'root-token')], env, 30_000);
    assert.equal(init.code, 0, init.stderr);
    root = readFileSync(join(dir, 'root-token'), 'utf8').trim();
    server = await startServer(configFile, env);
  });
  after(async () => {
    await server?.stop();
    pg?.destroy();
  });

  it('a write and its request record commit together; a read gets its records too', async () => {
    const put = await call(server.address, 'PUT', '/v1/secrets/app/one', root, { data: { v: '1' } });
    assert.equal(put.status, 200, put.text);
    const get = await call(server.address, 'GET', '/v1/secrets/app/one', root);
    assert.equal(get.status, 200);
    const rows = await auditRows();
    const forPut = rows.filter((r) => r.path === '/v1/secrets/app/one' && r.type === 'request');
    assert.equal(forPut.length, 1, 'one request record for the PUT');
    const putId = forPut[0]?.requestId;
    assert.deepEqual(rows.filter((r) => r.requestId === putId).map((r) => r.type), ['request', 'response']);
    assert.deepEqual(rows.filter((r) => r.requestId === putId && r.type === 'response').map((r) => r.outcome?.status), [200]);
    // The GET (read-only route) has its outcome record.
    assert.ok(rows.some((r) => r.path === '/v1/secrets/app/one' && r.type === 'response' && r.requestId !== putId && r.outcome?.status === 200));
    // Each process has its own chain: the init process's and the server's, each from a chain-start.
    const starts = rows.filter((r) => r.type === 'chain-start');
    assert.ok(starts.length >= 2);
    assert.ok(starts.every((r) => r.seq === 1));
  });

  it('a write whose audit insert fails is rolled back, and the client gets an error', async () => {
    const kvBefore = Number((await pg.admin('SELECT count(*) AS n FROM kv')).rows[0].n);
    // Made to fail for real, by the database: an insert into the audit table of this request's
    // records raises (other entries, such as checkpoints, still go in, so the log is healthy when
    // the request arrives and its handler runs). Sequences are not transactional: they count the
    // attempts that a rollback would otherwise erase.
    await pg.admin('CREATE SEQUENCE kv_attempts; CREATE SEQUENCE audit_attempts; GRANT USAGE ON SEQUENCE kv_attempts, audit_attempts TO keyhold');
    await pg.admin(`CREATE FUNCTION count_kv() RETURNS trigger AS $$ BEGIN PERFORM nextval('kv_attempts'); RETURN NEW; END $$ LANGUAGE plpgsql`);
    await pg.admin(`CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN IF NEW.entry LIKE '%rolled/back%' THEN PERFORM nextval('audit_attempts'); RAISE EXCEPTION 'audit refused by test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await pg.admin('CREATE TRIGGER count_kv BEFORE INSERT OR UPDATE ON kv FOR EACH ROW EXECUTE FUNCTION count_kv()');
    await pg.admin('CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()');
    let write;
    try {
      write = await call(server.address, 'PUT', '/v1/secrets/rolled/back', root, { data: { v: 'must not be stored' } });
    } finally {
      await pg.admin('DROP TRIGGER refuse_audit ON audit; DROP FUNCTION refuse_audit(); DROP TRIGGER count_kv ON kv; DROP FUNCTION count_kv()');
    }
    const attempts = async (seq: string) => {
      const r = (await pg.admin(`SELECT last_value, is_called FROM ${seq}`)).rows[0] as { last_value: string; is_called: boolean };
      return r.is_called ? Number(r.last_value) : 0;
    };
    // The handler ran and wrote, and the request record was inserted with it...
    assert.ok(await attempts('kv_attempts') >= 1, 'the write reached the kv table');
    assert.ok(await attempts('audit_attempts') >= 1, 'the request record was inserted');
    assert.equal(write.status, 503, write.text);
    assert.equal(write.body.error.code, 'ERR_AUDIT_UNAVAILABLE');
    // Nothing of the write is in the store: not the secret, not any other record it would have made.
    assert.equal(Number((await pg.admin('SELECT count(*) AS n FROM kv')).rows[0].n), kvBefore);
    // The log recovers by itself once inserts work again, and then answers.
    let status = 0;
    for (let i = 0; i < 50 && status !== 404; i++) {
      status = (await call(server.address, 'GET', '/v1/secrets/rolled/back', root)).status;
      if (status !== 404) await sleep(100);
    }
    assert.equal(status, 404, 'the write is not visible');
    assert.equal((await auditRows(`entry LIKE '%rolled/back%' AND entry LIKE '%"type":"request"%'`)).length, 0, 'no record of a request whose write was rolled back');
    assert.ok((await auditRows(`entry LIKE '%"type":"recovered"%'`)).length >= 1, 'the recovery is in the chain');
    // And writes work again.
    assert.equal((await call(server.address, 'PUT', '/v1/secrets/app/two', root, { data: { v: '2' } })).status, 200);
  });

  it('the file as a second sink: each process copies its chain, line for line, into a file of its own that audit verify --file checks offline', async () => {
    const pem = (await call(server.address, 'GET', '/v1/sys/audit/public-key', root)).body.public_key_pem as string;
    const pemFile = join(dir, 'audit-copy.pem');
    writeFileSync(pemFile, pem);
    const put = await call(server.address, 'PUT', '/v1/secrets/app/copied', root, { data: { v: 'x' } });
    assert.equal(put.status, 200, put.text);
    await sleep(1500); // the checkpoint after the last entries (every second here), then nothing new
    const copies = join(dir, 'audit-copies');
    const files = readdirSync(copies).sort();
    // keyhold init's chain and the server's.
    assert.equal(files.length, 2, files.join(' '));
    for (const name of files) {
      const file = join(copies, name);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const chain = /^audit-([0-9a-f]{32})\.log$/.exec(name)?.[1] as string;
      assert.ok(chain, name);
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
      const rows = (await pg.admin('SELECT entry FROM audit WHERE chain = $1 ORDER BY seq', [chain])).rows as Array<{ entry: string }>;
      assert.deepEqual(lines, rows.map((r) => r.entry), `${name}: the table's lines, in order`);
      const verified = await runCliTimed(['audit', 'verify', '--file', file, '--public-key', pemFile], env, 30_000);
      assert.equal(verified.code, 0, verified.stderr + verified.stdout);
    }
    const serverCopy = files.map((f) => join(copies, f)).find((f) => readFileSync(f, 'utf8').includes('/v1/secrets/app/copied'));
    assert.ok(serverCopy, 'the server\'s copy holds the request just made');
  });

  it('keyhold audit verify --config checks every chain in the table, and finds an edited entry', async () => {
    const pem = (await call(server.address, 'GET', '/v1/sys/audit/public-key', root)).body.public_key_pem as string;
    const pemFile = join(dir, 'audit.pem');
    writeFileSync(pemFile, pem);
    // Wait for a checkpoint after the last writes (every second here).
    await sleep(1500);
    const good = await runCliTimed(['audit', 'verify', '--config', configFile, '--public-key', pemFile], env, 30_000);
    assert.equal(good.code, 0, good.stderr + good.stdout);
    const result = JSON.parse(good.stdout) as { ok: boolean; chains: { ok: boolean; checkpoints: number }[] };
    assert.equal(result.ok, true);
    assert.ok(result.chains.length >= 2);
    assert.ok(result.chains.every((c) => c.ok && c.checkpoints >= 1));

    // An edit by whoever can write the table: the path of a recorded request.
    const target = (await auditRows(`entry LIKE '%/v1/secrets/app/one%'`))[0];
    assert.ok(target);
    await pg.admin(`UPDATE audit SET entry = replace(entry, '/v1/secrets/app/one', '/v1/secrets/app/0ne') WHERE chain = $1 AND seq = $2`, [target.chain, target.seq]);
    const bad = await runCliTimed(['audit', 'verify', '--config', configFile, '--public-key', pemFile], env, 30_000);
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, new RegExp(`chain ${target.chain} bad at seq ${target.seq}`));
  });
});
