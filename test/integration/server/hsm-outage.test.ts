/**
 * The red-team outage case on a real server process (`keyhold dev`, SoftHSM): the token goes away
 * (its store disappears: calls then fail with CKR_OBJECT_HANDLE_INVALID and the token probe with
 * CKR_GENERAL_ERROR, as a device that lost its state does), a request arrives during the outage,
 * then the token comes back. Before the HSM pool, the server answered 502 forever after and its
 * health stayed 503 until a restart.
 */
import assert from 'node:assert/strict';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { call, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';

const PLAINTEXT = Buffer.from('outage test').toString('base64');

describe('server: the HSM goes away and comes back (no restart)', () => {
  let dev: DevServer | undefined;
  after(async () => { await dev?.stop(); });

  it('answers 503 ERR_HSM_UNAVAILABLE with Retry-After during the outage (no HSM detail), readiness turns false within 5 s, and serves again within 5 s of the token returning', async () => {
    const dataDir = tempDir('keyhold-hsm-outage-');
    dev = await startDev(dataDir);
    const { address, rootToken } = dev;
    assert.equal((await call(address, 'POST', '/v1/keys', rootToken, { name: 'on-device', type: 'aes256-gcm', protection: 'hsm' })).status, 200);
    const encrypt = () => fetch(`${address}/v1/keys/on-device/encrypt`, {
      method: 'POST', headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ plaintext: PLAINTEXT }),
    });
    const before = await encrypt();
    const beforeText = await before.text();
    assert.equal(before.status, 200, beforeText);
    const ciphertext = (JSON.parse(beforeText) as { ciphertext: string }).ciphertext;

    const tokens = join(dataDir, 'tokens');
    const [tokenDir] = readdirSync(tokens) as [string];
    renameSync(join(tokens, tokenDir), join(dataDir, 'token-away'));
    const goneAt = Date.now();

    const during = await encrypt();
    const body = await during.text();
    assert.equal(during.status, 503, body);
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'ERR_HSM_UNAVAILABLE', body);
    const retryAfter = Number(during.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After: ${during.headers.get('retry-after')}`);
    assert.doesNotMatch(body, /CKR_|pkcs|softhsm|slot/i, 'no detail from inside the HSM');

    const unready = await pollUntil('health 503', async () => {
      const health = await call(address, 'GET', '/v1/sys/health');
      return health.status === 503 ? health : null;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(Date.now() - goneAt < 5000);
    assert.equal(unready.body.hsm.ok, false);
    assert.notEqual(unready.body.hsm.members[0].state, 'up');
    assert.ok(unready.body.hsm.members[0].failures >= 1);
    assert.doesNotMatch(unready.text, /CKR_/);

    renameSync(join(dataDir, 'token-away'), join(tokens, tokenDir));
    const backAt = Date.now();
    await pollUntil('encrypt succeeds again', async () => (await encrypt()).status === 200, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(Date.now() - backAt < 5000, `served again after ${Date.now() - backAt} ms`);
    const decrypted = await call(address, 'POST', '/v1/keys/on-device/decrypt', rootToken, { ciphertext });
    assert.equal(decrypted.status, 200, decrypted.text);
    assert.equal(decrypted.body.plaintext, PLAINTEXT);
    await pollUntil('health 200', async () => (await call(address, 'GET', '/v1/sys/health')).status === 200, { timeoutMs: 5000, intervalMs: 100 });
    const health = await call(address, 'GET', '/v1/sys/health');
    assert.deepEqual(health.body.hsm.members.map((m: { name: string; state: string }) => [m.name, m.state]), [['hsm', 'up']]);
    const metrics = await (await fetch(`${address}/metrics`)).text();
    assert.match(metrics, /keyhold_hsm_member_up\{member="hsm"\} 1/);
    assert.match(metrics, /keyhold_hsm_member_failures_total\{member="hsm"\} [1-9]/);
    assert.match(metrics, /keyhold_hsm_call_seconds_count\{member="hsm"\} [1-9]/);
  });
});
