/**
 * An HSM that goes away and comes back (restart, failover, a network HSM's link): its session and
 * object handles die with it. The plugin, a real child process on its own SoftHSM token, must see
 * that, report it, and reconnect by itself once the token is back, with no restart.
 */
import assert from 'node:assert/strict';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KmsTestClient } from '../../helpers/kms-client.js';
import { startPluginProcess, type PluginProcess } from '../../helpers/kms-plugin-process.js';
import { tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { pollUntil } from '../../helpers/wait.js';

const token = makeSoftHsmToken('kms-reconnect');
const work = tempDir('keyhold-kms-reconnect-');


describe('kms-plugin: the HSM goes away and comes back', () => {
  let plugin: PluginProcess | undefined;
  let client: KmsTestClient | undefined;
  after(async () => {
    client?.close();
    await plugin?.stop();
  });

  it('reports unhealthy while the token is gone, reconnects when it returns, and decrypts what it encrypted before', async () => {
    const socket = join(work, 'kms.sock');
    plugin = await startPluginProcess({ socket, token, keyLabel: 'reconnect' });
    client = new KmsTestClient(`unix://${socket}`);
    const before = await client.status();
    assert.equal(before.healthz, 'ok');
    const sealed = await Promise.all(Array.from({ length: 5 }, (_, i) => (client as KmsTestClient).encrypt(Buffer.alloc(32, i))));

    // The token disappears (as far as the module can tell, the device is gone).
    const tokens = join(token.dir, 'tokens');
    const [tokenDir] = readdirSync(tokens) as [string];
    renameSync(join(tokens, tokenDir), join(token.dir, 'away'));
    const p = plugin;
    const waiting = { timeoutMs: 60_000, intervalMs: 250, detail: () => `plugin said:\n${p.output().slice(-2000)}` };
    await pollUntil('Status reports the lost HSM', async () => (await (client as KmsTestClient).status()).healthz !== 'ok', waiting);
    await pollUntil('the plugin says it lost the root key and is reconnecting', () => /root key lost: .*connecting again/.test(p.output()), waiting);

    // It comes back: the plugin logs in again by itself, with the same keys and key_id.
    renameSync(join(token.dir, 'away'), join(tokens, tokenDir));
    await pollUntil('Status is ok again without a restart', async () => (await (client as KmsTestClient).status()).healthz === 'ok', waiting);
    const after = await client.status();
    assert.equal(after.key_id, before.key_id);
    for (const [i, reply] of sealed.entries()) assert.deepEqual(await client.decrypt(reply), Buffer.alloc(32, i));
    const fresh = await client.encrypt(Buffer.alloc(32, 9));
    assert.deepEqual(await client.decrypt(fresh), Buffer.alloc(32, 9));
  });
});
