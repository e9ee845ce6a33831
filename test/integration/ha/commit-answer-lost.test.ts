/**
 * A COMMIT that reached PostgreSQL but whose answer never came back (the server stopped, the
 * network cut) may have committed. A TCP proxy between keyhold and a real PostgreSQL forwards a
 * write transaction's COMMIT, lets the database commit it, then cuts the connection before the
 * answer: exactly the outcome a crash of PostgreSQL mid-commit gives, made deterministic.
 *
 * keyhold must take the committed audit entries as durable and go on: before, it sealed its next
 * entry after the stale head, collided on (chain, seq) for ever, and refused every request with
 * 503 ERR_AUDIT_UNAVAILABLE until restarted (seen in CI as a replica that never recovered from a
 * PostgreSQL restart).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { sleep } from '../../helpers/processes.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { pollUntil } from '../../helpers/wait.js';
import { runCliTimed } from '../server/support.js';

/** The simple-protocol Query message 'COMMIT' (type Q, length 11, the text and its NUL). */
const COMMIT = Buffer.concat([Buffer.from([0x51, 0, 0, 0, 11]), Buffer.from('COMMIT\0', 'latin1')]);
/** The audit insert's prepared statement name: in its Parse, and in every Bind after. */
const AUDIT_INSERT = Buffer.from('keyhold_audit_insert', 'latin1');

/** A TCP proxy to PostgreSQL that, when armed, swallows the answer to the next COMMIT of a transaction that inserted audit entries. */
class CommitCutter {
  readonly server: Server;
  armed = false;
  cuts = 0;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: number) {
    this.server = createServer((client) => this.pipe(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((res) => this.server.listen(0, '127.0.0.1', res));
    return (this.server.address() as { port: number }).port;
  }

  private pipe(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    let auditInTransaction = false;
    let cutting = false;
    client.on('data', (chunk) => {
      if (chunk.includes(AUDIT_INSERT)) auditInTransaction = true;
      if (this.armed && auditInTransaction && chunk.includes(COMMIT)) {
        this.armed = false;
        cutting = true;
        this.cuts++;
        upstream.write(chunk);
        // Long enough for PostgreSQL to commit (fsync on); its answer is dropped, then both ends are cut.
        setTimeout(() => { client.destroy(); upstream.destroy(); }, 500);
        return;
      }
      if (chunk.includes(COMMIT)) auditInTransaction = false;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => { if (!cutting) client.write(chunk); });
    const close = () => { client.destroy(); upstream.destroy(); this.sockets.delete(client); this.sockets.delete(upstream); };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((res) => this.server.close(res));
  }
}

describe('a COMMIT whose answer is lost', () => {
  let pg: TestPostgres;
  let cutter: CommitCutter;
  let server: DevServer;
  let root: string;
  let configFile: string;
  const dir = tempDir('keyhold-commit-lost-');
  const token = makeSoftHsmToken('kh-commit-lost');
  const env = { SOFTHSM2_CONF: token.confPath };

  before(async () => {
    pg = await startPostgres();
    const direct = join(dir, 'direct.yaml');
    const audit = { checkpointIntervalSeconds: 1, mirrorDir: join(dir, 'audit-copies') };
    writeFileSync(direct, stringify({ listen: '127.0.0.1:0', storage: { postgres: { url: pg.url, passwordFile: pg.passwordFile } }, hsm: token.config, audit }));
    const init = await runCliTimed(['init', '--config', direct, '--root-token-file', join(dir, 'root-token')], env, 60_000);
    assert.equal(init.code, 0, init.stderr);
    root = readFileSync(join(dir, 'root-token'), 'utf8').trim();
    cutter = new CommitCutter(Number(new URL(pg.url).port));
    const proxied = new URL(pg.url);
    proxied.port = String(await cutter.listen());
    configFile = join(dir, 'proxied.yaml');
    writeFileSync(configFile, stringify({ listen: '127.0.0.1:0', storage: { postgres: { url: proxied.toString(), passwordFile: pg.passwordFile } }, hsm: token.config, audit }));
    server = await startServer(configFile, env, dir);
  });
  after(async () => {
    await server?.stop();
    await cutter?.close();
    pg?.destroy();
  });

  it('the write is answered with an error, the next writes succeed at once, and the audit chain and its file copy stay whole', async () => {
    assert.equal((await call(server.address, 'PUT', '/v1/secrets/app/before', root, { data: { v: '0' } })).status, 200);

    cutter.armed = true;
    const lost = await call(server.address, 'PUT', '/v1/secrets/app/lost', root, { data: { v: 'unknown outcome' } });
    assert.equal(cutter.cuts, 1, 'the proxy cut a COMMIT');
    // Not acknowledged: the client was never told it was written (whatever the database holds).
    assert.equal(lost.status, 503, lost.text);
    assert.match(String(lost.body?.error?.code), /^ERR_[A-Z_]+$/);
    // The database did commit it: the proxy let the COMMIT through.
    const committed = await pg.admin(`SELECT count(*)::int AS n FROM audit WHERE entry LIKE '%/v1/secrets/app/lost%'`);
    assert.ok((committed.rows[0] as { n: number }).n >= 1, 'the lost commit is in the table');

    // The very next writes succeed (a few tries allowed while the pool drops the cut connection).
    await pollUntil('writes succeeding again', async () => (await call(server.address, 'PUT', '/v1/secrets/app/after', root, { data: { v: '1' } })).status === 200, { timeoutMs: 5_000, intervalMs: 100 });
    for (let i = 0; i < 20; i++) {
      const put = await call(server.address, 'PUT', `/v1/secrets/app/after-${i}`, root, { data: { v: String(i) } });
      assert.equal(put.status, 200, put.text);
    }
    // What the database committed is what the server serves: the lost write is there, and the
    // next version of it follows it (no cache kept the state from before the lost commit).
    const read = await call(server.address, 'GET', '/v1/secrets/app/lost', root);
    assert.equal(read.status, 200, read.text);
    assert.equal(read.body.data.v, 'unknown outcome');
    const next = await call(server.address, 'PUT', '/v1/secrets/app/lost', root, { data: { v: 'second' }, cas: 1 });
    assert.equal(next.status, 200, next.text);
    assert.equal(next.body.version, 2);
    const health = await call(server.address, 'GET', '/v1/sys/health');
    assert.equal(health.status, 200, health.text);

    // The chain in the table verifies, checkpoints included.
    const pem = (await call(server.address, 'GET', '/v1/sys/audit/public-key', root)).body.public_key_pem as string;
    const pemFile = join(dir, 'audit.pem');
    writeFileSync(pemFile, pem);
    await sleep(1500);
    const verified = await runCliTimed(['audit', 'verify', '--config', configFile, '--public-key', pemFile], env, 30_000);
    assert.equal(verified.code, 0, verified.stderr + verified.stdout);

    // The file copy of this server's chain holds the table's lines, the caught-up ones included, and verifies.
    const chain = (await call(server.address, 'GET', '/v1/sys/health')).body.audit?.chain as string | undefined;
    const copies = join(dir, 'audit-copies');
    const files = readdirSync(copies).filter((f) => chain === undefined || f.includes(chain));
    const withLost = files.map((f) => join(copies, f)).filter((f) => readFileSync(f, 'utf8').includes('/v1/secrets/app/lost'));
    assert.equal(withLost.length, 1, `one copy holds the lost commit's entries (${files.join(', ')})`);
    const copyOk = await runCliTimed(['audit', 'verify', '--file', withLost[0] as string, '--public-key', pemFile], env, 30_000);
    assert.equal(copyOk.code, 0, copyOk.stderr + copyOk.stdout);
  });
});
