/**
 * A real server process on a network-HSM cluster: three p11-kit members in front of one SoftHSM
 * token (`hsm.members`). Through the hop there is no AES-GCM, so the store seals with RSA-OAEP.
 *
 * The data path is an `hsm`-protected EC key (sign: local hash, raw ECDSA on the device).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startP11KitFleet, type P11KitFleet } from '../../helpers/p11kit.js';
import { startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { runCliTimed } from './support.js';

const INPUT = Buffer.from('sign me').toString('base64');

describe('server on a three-member p11-kit HSM cluster (sealed with RSA-OAEP: no AES-GCM through the hop)', () => {
  let fleet: P11KitFleet | undefined;
  let server: DevServer | undefined;
  after(async () => {
    await server?.stop();
    await fleet?.stop();
  });

  it('a member killed under load fails no request; every member killed: 503 + Retry-After within 5 s; restarted: 200 within 5 s; no restart', async () => {
    fleet = await startP11KitFleet(3, 'keyhold-srv-cluster');
    const dir = tempDir('keyhold-hsm-cluster-');
    const configFile = join(dir, 'keyhold.json');
    writeFileSync(configFile, JSON.stringify({
      listen: '127.0.0.1:0',
      storage: { sqlite: { path: join(dir, 'keyhold.db') } },
      audit: { path: join(dir, 'audit.log') },
      hsm: { members: fleet.members.map((m) => ({ name: m.name, ...m.config })) },
    }));
    const init = await runCliTimed(['init', '--config', configFile, '--root-token-file', join(dir, 'root-token')], {}, 60_000);
    // The fleet has no AES-GCM: init seals with RSA-OAEP (src/barrier/seal.ts).
    assert.equal(init.code, 0, `init failed: ${init.stdout}${init.stderr}`);
    server = await startServer(configFile, {}, dir);
    const { address, rootToken } = server;
    const post = (path: string, body: unknown) => fetch(`${address}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal((await post('/v1/keys', { name: 'cluster-ec', type: 'ec-p256', protection: 'hsm' })).status, 200);
    const sign = () => post('/v1/keys/cluster-ec/sign', { input: INPUT });

    const failures: string[] = [];
    let stop = false;
    let done = 0;
    const workers = Array.from({ length: 16 }, async () => {
      while (!stop) {
        const response = await sign();
        const text = await response.text();
        if (response.status === 200) done++;
        else failures.push(`${response.status} ${text}`);
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const [victim] = fleet.members;
    await victim?.kill();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const health = await (await fetch(`${address}/v1/sys/health`)).json() as { hsm: { ok: boolean; members: Array<{ name: string; state: string }> } };
    assert.equal(health.hsm.ok, true);
    assert.notEqual(health.hsm.members.find((m) => m.name === victim?.name)?.state, 'up');
    await victim?.start();
    await pollUntil('the member rejoins', async () => {
      const h = await (await fetch(`${address}/v1/sys/health`)).json() as typeof health;
      return h.hsm.members.find((m) => m.name === victim?.name)?.state === 'up';
    }, { timeoutMs: 5000, intervalMs: 100 });
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, [], 'no failed request');
    assert.ok(done > 100);

    await Promise.all(fleet.members.map((m) => m.kill()));
    const killedAt = Date.now();
    const refused = await pollUntil('503', async () => {
      const response = await sign();
      const text = await response.text();
      return response.status === 503 ? { response, text } : null;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(Date.now() - killedAt < 5000);
    assert.equal((JSON.parse(refused.text) as { error: { code: string } }).error.code, 'ERR_HSM_UNAVAILABLE');
    assert.ok(Number(refused.response.headers.get('retry-after')) >= 1);
    assert.doesNotMatch(refused.text, /CKR_/);
    await Promise.all(fleet.members.map((m) => m.start()));
    const backAt = Date.now();
    await pollUntil('200 again', async () => {
      const response = await sign();
      await response.text();
      return response.status === 200;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(Date.now() - backAt < 5000);
    assert.equal(server.process.exitCode, null, 'the server process served throughout: no restart');
    assert.equal(server.process.signalCode, null);
  });
});
