import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyholdError } from '../../../../src/errors.js';
import { RootKeyConnector } from '../../../../src/kubernetes/kms-plugin/connector.js';
import type { RootKey } from '../../../../src/kubernetes/kms-plugin/root-key.js';

const fakeRoot = { description: 'test root', calls: 0, close: async () => undefined } as unknown as RootKey;
const quietLog = () => {
  const lines: string[] = [];
  return { lines, log: { info: (_f: object, m: string) => lines.push(`info ${m}`), error: (_f: object, m: string) => lines.push(`error ${m}`) } };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('root key connector', () => {
  it('never tries the same wrong PIN twice; tries again once the PIN changes', async () => {
    let pin = 'wrong';
    const tried: string[] = [];
    const { lines, log } = quietLog();
    const connector = new RootKeyConnector({
      open: async () => {
        tried.push(pin);
        if (pin !== 'right') throw new KeyholdError('ERR_HSM_PIN_INCORRECT', 'HSM login failed: the PIN is incorrect');
        return fakeRoot;
      },
      readPin: () => pin,
      log,
      pinRecheckMs: 10,
    });
    await connector.start();
    await sleep(150);
    assert.deepEqual(tried, ['wrong'], 'one attempt with the wrong PIN in 15 recheck periods');
    assert.equal(connector.root, undefined);
    assert.match(connector.error ?? '', /PIN is incorrect/);
    assert.equal(lines.filter((l) => l.includes('Not retrying')).length, 1);
    pin = 'right';
    await sleep(100);
    assert.deepEqual(tried, ['wrong', 'right']);
    assert.equal(connector.root, fakeRoot);
    await connector.close();
  });

  it('backs off exponentially on other failures and logs each distinct failure once', async () => {
    const at: number[] = [];
    const { lines, log } = quietLog();
    const connector = new RootKeyConnector({
      open: async () => {
        at.push(Date.now());
        throw new KeyholdError('ERR_HSM_MODULE', 'cannot load module');
      },
      log,
      minBackoffMs: 20,
      maxBackoffMs: 80,
    });
    await connector.start();
    await sleep(400);
    await connector.close();
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    assert.ok(at.length >= 4 && at.length <= 8, `${at.length} attempts in 400 ms`);
    assert.ok((gaps[0] as number) >= 15 && (gaps[1] as number) >= 35, `gaps grow: ${gaps.join(',')}`);
    assert.ok(gaps.every((g) => g < 200), 'capped');
    // Every delay here rounds to "0 s", so all failures read the same: one line, however many attempts.
    assert.equal(lines.filter((l) => l.startsWith('error')).length, 1, lines.join('\n'));
    const attempts = at.length;
    await sleep(150);
    assert.equal(at.length, attempts, 'no attempts after close');
  });

  it('closes and reopens a root key that stays unhealthy (an HSM restart kills its handles); one bad check is not enough', async () => {
    const { lines, log } = quietLog();
    const made: Array<{ healthy: boolean; closed: boolean }> = [];
    const connected: RootKey[] = [];
    const connector = new RootKeyConnector({
      open: async () => {
        const state = { healthy: true, closed: false };
        made.push(state);
        return { description: `root ${made.length}`, calls: 0, reopenWhenLost: true, health: async () => (state.healthy ? { ok: true } : { ok: false, error: 'CKR_DEVICE_REMOVED' }), close: async () => { state.closed = true; } } as unknown as RootKey;
      },
      log, minBackoffMs: 10, healthCheckMs: 10, reconnectAfter: 3,
    });
    connector.onConnected((root) => connected.push(root));
    await connector.start();
    const first = made[0] as { healthy: boolean; closed: boolean };
    // A blip: one failed check, then healthy again.
    first.healthy = false;
    await sleep(15);
    first.healthy = true;
    await sleep(60);
    assert.equal(made.length, 1, 'no reconnect for one failed check');
    // Lost for good: after three failed checks, closed and opened again.
    first.healthy = false;
    await sleep(150);
    assert.equal(first.closed, true);
    assert.equal(made.length, 2);
    assert.equal(connected.length, 2);
    assert.equal(connector.root, connected[1]);
    assert.equal(connector.error, undefined);
    assert.ok(lines.some((l) => /root key lost: CKR_DEVICE_REMOVED; closing it and connecting again/.test(l)), lines.join('\n'));
    await connector.close();
    assert.equal((made[1] as { closed: boolean }).closed, true);
  });

  it('does not reopen a root key that holds nothing to reopen (a keyhold server key): it recovers by itself', async () => {
    const { log } = quietLog();
    let opened = 0;
    let closed = 0;
    const connector = new RootKeyConnector({
      open: async () => {
        opened++;
        return { description: 'server', calls: 0, reopenWhenLost: false, health: async () => ({ ok: false, error: 'ECONNREFUSED' }), close: async () => { closed++; } } as unknown as RootKey;
      },
      log, minBackoffMs: 10, healthCheckMs: 10, reconnectAfter: 3,
    });
    await connector.start();
    await sleep(100);
    assert.deepEqual([opened, closed], [1, 0]);
    await connector.close();
  });
});
