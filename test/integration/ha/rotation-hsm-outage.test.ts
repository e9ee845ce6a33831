/**
 * Where root rotation meets HSM outages, with two real replicas on one PostgreSQL, each reaching
 * the one token through its own p11-kit member: while replica B's member is down, replica A
 * rotates the root key. B learns of it through the change feed but cannot unwrap the new key
 * (no HSM): meanwhile it must refuse writes (503), since a record under the old key would outlive
 * it; once its member is back, B must switch to the new generation on its own, without a restart
 * and without another rotation event, and read what A wrote under the new key.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { startP11KitFleet, type P11KitFleet, type P11KitMember } from '../../helpers/p11kit.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { runCliTimed } from '../server/support.js';

describe('root rotation while one replica\'s HSM member is down (PostgreSQL, p11-kit)', { timeout: 180_000 }, () => {
  let pg: TestPostgres | undefined;
  let fleet: P11KitFleet | undefined;
  const servers: DevServer[] = [];
  const dir = tempDir('keyhold-ha-rot-outage-');
  after(async () => {
    for (const s of servers) await s.stop('SIGKILL').catch(() => undefined);
    await fleet?.stop();
    await pg?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    if (fleet) fs.rmSync(fleet.token.dir, { recursive: true, force: true });
  });

  it('the replica whose member was down switches to the new root key once the member is back', async () => {
    pg = await startPostgres();
    fleet = await startP11KitFleet(2, 'kh-ha-rot-outage');
    const configOf = (member: P11KitMember): string => {
      const file = path.join(dir, `${member.name}.json`);
      fs.writeFileSync(file, JSON.stringify({
        listen: '127.0.0.1:0',
        storage: { postgres: { url: pg?.url, passwordFile: pg?.passwordFile } },
        hsm: { module: member.module, tokenLabel: fleet?.token.label, pinFile: fleet?.token.pinFile },
        audit: {},
        rootRotation: { batchSize: 50, pauseMs: 0, settleMs: 1_000 },
      }));
      return file;
    };
    const [ma, mb] = fleet.members as [P11KitMember, P11KitMember];
    const init = await runCliTimed(['init', '--config', configOf(ma), '--root-token-file', path.join(dir, 'root-token')], ma.config.env, 90_000);
    assert.equal(init.code, 0, init.stderr);
    const a = await startServer(configOf(ma), ma.config.env, dir);
    servers.push(a);
    const b = await startServer(configOf(mb), mb.config.env, dir);
    servers.push(b);
    const root = a.rootToken;
    for (let i = 0; i < 20; i++) assert.equal((await call(a.address, 'PUT', `/v1/secrets/pre/s-${i}`, root, { data: { i: String(i) } })).status, 200);

    await mb.kill();
    const rotated = await call(a.address, 'POST', '/v1/sys/seal/rotate-root', root);
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(rotated.body.generation, 2);
    assert.equal((await call(a.address, 'PUT', '/v1/secrets/post/from-a', root, { data: { v: 'a' } })).status, 200);
    await pollUntil('A\'s rewrite finished', async () => (await call(a.address, 'GET', '/v1/sys/seal/rotation', root)).body?.rewriting === false, { timeoutMs: 30_000, intervalMs: 100 });
    // B heard of the rotation while it could not unwrap the new key: it refuses writes (a record under
    // the old key would be unreadable, generation 1 is gone from the keyring), as an HSM outage.
    await new Promise((r) => setTimeout(r, 1_000));
    const refused = await call(b.address, 'PUT', '/v1/secrets/post/during-outage', root, { data: { v: 'b' } });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body.error.code, 'ERR_HSM_UNAVAILABLE');
    assert.ok(refused.body.error.message.length > 0 && !/ERR_BARRIER_INTEGRITY/.test(refused.text));
    // A record under the new key is an outage too on B, not corruption (500).
    const early = await call(b.address, 'GET', '/v1/secrets/post/from-a', root);
    assert.equal(early.status, 503, early.text);
    assert.equal(early.body.error.code, 'ERR_HSM_UNAVAILABLE');

    await mb.start();
    await pollUntil('B on generation 2', async () => (await call(b.address, 'GET', '/v1/sys/health')).body?.root_key?.generation === 2, { timeoutMs: 15_000, intervalMs: 200 });
    const read = await call(b.address, 'GET', '/v1/secrets/post/from-a', root);
    assert.equal(read.status, 200, read.text);
    assert.equal(read.body.data.v, 'a');
    assert.equal((await call(b.address, 'GET', '/v1/secrets/pre/s-3', root)).body?.data?.i, '3');
    // B's writes are under the new key: A reads them, with generation 1 dropped from the keyring.
    assert.equal((await call(b.address, 'PUT', '/v1/secrets/post/from-b', root, { data: { v: 'b' } })).status, 200);
    assert.equal((await call(a.address, 'GET', '/v1/secrets/post/from-b', root)).body?.data?.v, 'b');
  });
});
