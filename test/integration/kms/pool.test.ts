/**
 * The KMS plugin in direct mode on an HSM cluster of two members (--hsm-config): the same pool as
 * the server. Both members are SoftHSM (AES-GCM wraps the KEKs; the p11-kit hop has no AES-GCM),
 * each loaded from its own copy of the module with its own SOFTHSM2_CONF, whose token directory is
 * a symlink to one shared store: one cluster, same keys. A member is killed by pointing its
 * symlink at an empty directory (its token disappears, as a device that lost its state).
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KmsTestClient } from '../../helpers/kms-client.js';
import { startPluginProcess, type PluginProcess } from '../../helpers/kms-plugin-process.js';
import { sleep } from '../../helpers/processes.js';
import { tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { pollUntil } from '../../helpers/wait.js';

const token = makeSoftHsmToken('kms-pool');
const work = tempDir('keyhold-kms-pool-');

function memberStore(name: string): { link: string; conf: string } {
  const link = join(work, `tokens-${name}`);
  symlinkSync(join(token.dir, 'tokens'), link);
  const conf = join(work, `softhsm2-${name}.conf`);
  writeFileSync(conf, `directories.tokendir = ${link}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  return { link, conf };
}

describe('kms-plugin direct mode on a two-member HSM pool', () => {
  let plugin: PluginProcess | undefined;
  let client: KmsTestClient | undefined;
  after(async () => {
    client?.close();
    await plugin?.stop();
  });

  it('keeps serving with no failed call when a member dies under load, stays ready, and the member rejoins', async () => {
    const a = memberStore('a');
    const b = memberStore('b');
    const config = join(work, 'hsm.yaml');
    const member = (name: string, conf: string) => ({ name, module: token.module, env: { SOFTHSM2_CONF: conf }, tokenLabel: token.label, pinFile: token.pinFile });
    writeFileSync(config, JSON.stringify({ hsm: { members: [member('a', a.conf), member('b', b.conf)] } }));
    const socket = join(work, 'kms.sock');
    // A new local KEK for every Encrypt: each one wraps on the HSM.
    plugin = await startPluginProcess({ socket, token, keyLabel: 'pool', extraArgs: ['--hsm-config', config, '--kek-max-uses', '1'] });
    const p = plugin;
    const kms = new KmsTestClient(`unix://${socket}`);
    client = kms;
    assert.equal((await kms.status()).healthz, 'ok');

    const failures: string[] = [];
    let done = 0;
    let stop = false;
    const workers = Array.from({ length: 8 }, async (_, i) => {
      while (!stop) {
        try {
          const plaintext = Buffer.alloc(32, i);
          assert.deepEqual(await kms.decrypt(await kms.encrypt(plaintext)), plaintext);
          done++;
        } catch (err) {
          failures.push(err instanceof Error ? err.message : String(err));
        }
      }
    });
    await sleep(1500);
    rmSync(a.link);
    mkdirSync(a.link);
    const waiting = { timeoutMs: 10_000, intervalMs: 100, detail: () => p.output().slice(-2000) };
    await pollUntil('member a taken out', () => /HSM member a is out/.test(p.output()), waiting);
    const atKill = done;
    await sleep(2000);
    assert.ok(done > atKill, 'calls go on during the outage');
    assert.equal((await kms.status()).healthz, 'ok', 'still ready: member b serves');
    rmSync(a.link, { recursive: true });
    symlinkSync(join(token.dir, 'tokens'), a.link);
    // Back within 5 s (pollUntil fails the test otherwise).
    await pollUntil('member a back', () => /HSM member a is back/.test(p.output()), { ...waiting, timeoutMs: 5000 });
    await sleep(500);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, [], 'no call failed');
    assert.ok(done > 20, `${done} round trips`);
  });
});
