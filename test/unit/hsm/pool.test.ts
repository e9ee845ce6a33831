import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KeyholdError } from '../../../src/errors.js';
import { hsmError } from '../../../src/hsm/ckr.js';
import { MemoryHsm, memoryKeyStore, type MemoryDevice, type MemoryKeyStore } from '../../../src/hsm/memory.js';
import { HsmPool } from '../../../src/hsm/pool.js';
import type { HsmMemberHealth } from '../../../src/hsm/types.js';
import { hsmContract } from '../../contract/hsm.js';
import { keyholdCode } from '../../helpers/errors.js';
import { pollUntil } from '../../helpers/wait.js';

/** A simulated cluster member: its own device switch, the cluster's shared key store. */
interface TestMember {
  name: string;
  device: MemoryDevice;
  opens: number;
  /** Thrown by the next opens instead of connecting (e.g. a wrong PIN). */
  openError?: KeyholdError;
}

interface Cluster {
  store: MemoryKeyStore;
  members: Map<string, TestMember>;
  pool: HsmPool<TestMember>;
}

async function cluster(names: string[], options: { probeIntervalMs?: number } = {}): Promise<Cluster> {
  const store = memoryKeyStore();
  const members = new Map(names.map((name) => [name, { name, device: {}, opens: 0 } as TestMember]));
  const pool = await HsmPool.open<TestMember>([...members.values()], {
    probeIntervalMs: options.probeIntervalMs ?? 50,
    spec: (member) => ({
      name: member.name,
      identity: member.name,
      async open() {
        member.opens++;
        if (member.openError) throw member.openError;
        if (member.device.failure) throw hsmError(new Error(member.device.failure), 'open');
        return new MemoryHsm({ store, device: member.device, healthCacheSeconds: 0, label: 'cluster' });
      },
    }),
  });
  return { store, members, pool };
}

function device(c: Cluster, name: string): MemoryDevice {
  return (c.members.get(name) as TestMember).device;
}

async function memberHealth(c: Cluster, name: string): Promise<HsmMemberHealth> {
  const found = (await c.pool.health()).members?.find((m) => m.name === name);
  assert.ok(found, `member ${name} in health`);
  return found;
}

/** Calls made on each member's device, read from the pool's connections. */
function callsByMember(c: Cluster): Record<string, number> {
  const members = (c.pool as unknown as { members: Array<{ name: string; callCount: number }> }).members;
  return Object.fromEntries(members.map((m) => [m.name, m.callCount]));
}

const pools: Array<HsmPool<TestMember>> = [];
after(async () => { await Promise.all(pools.map((p) => p.close())); });

async function open(names: string[], options?: { probeIntervalMs?: number }): Promise<Cluster> {
  const c = await cluster(names, options);
  pools.push(c.pool);
  return c;
}

hsmContract('HsmPool of two MemoryHsm members', async () => (await open(['a', 'b'])).pool, ['aesKeyWrapPad']);

describe('HsmPool over MemoryHsm members', () => {
  it('spreads calls over the healthy members', async () => {
    const c = await open(['a', 'b', 'c']);
    const key = await c.pool.generateKey('spread', 'ec-p256');
    const before = callsByMember(c);
    await Promise.all(Array.from({ length: 300 }, () => c.pool.sign(key, randomBytes(16))));
    const after = callsByMember(c);
    for (const name of ['a', 'b', 'c']) {
      const made = (after[name] ?? 0) - (before[name] ?? 0);
      assert.ok(made >= 60, `member ${name} made ${made} of 300 calls: ${JSON.stringify(after)}`);
    }
  });

  it('a gone member: its breaker opens at once, calls go elsewhere, and it closes again once the device answers', async () => {
    const c = await open(['a', 'b']);
    const key = await c.pool.generateKey('breaker', 'hmac-sha256');
    device(c, 'a').failure = 'CKR_DEVICE_ERROR';
    // Every call succeeds: the one that met the gone member is retried on the other.
    await Promise.all(Array.from({ length: 50 }, () => c.pool.hmacSha256(key, randomBytes(8))));
    const down = await memberHealth(c, 'a');
    assert.notEqual(down.state, 'up');
    assert.ok(down.failures >= 1);
    assert.equal((await c.pool.health()).ok, true, 'b still serves');
    const whileDown = callsByMember(c).a;
    await Promise.all(Array.from({ length: 50 }, () => c.pool.hmacSha256(key, randomBytes(8))));
    assert.equal(callsByMember(c).a, whileDown, 'no call reaches the member while its breaker is open');
    // Probing: the member reconnects in the background (no call needed) and rejoins.
    delete device(c, 'a').failure;
    await pollUntil('member a up again', async () => (await memberHealth(c, 'a')).state === 'up', { timeoutMs: 3000, intervalMs: 20 });
    const rejoined = callsByMember(c).a ?? 0;
    await Promise.all(Array.from({ length: 50 }, () => c.pool.hmacSha256(key, randomBytes(8))));
    assert.ok((callsByMember(c).a ?? 0) > rejoined, 'the member takes calls again');
  });

  it('the background probe takes a member out without any call', async () => {
    const c = await open(['a', 'b']);
    device(c, 'b').failure = 'CKR_TOKEN_NOT_PRESENT';
    await pollUntil('member b out', async () => (await memberHealth(c, 'b')).state !== 'up', { timeoutMs: 2000, intervalMs: 20 });
  });

  it('retries an idempotent call that was in flight on a member that went away, on another member', async () => {
    const c = await open(['a', 'b'], { probeIntervalMs: 60_000 });
    const key = await c.pool.generateKey('in-flight', 'ec-p256');
    const failovers: string[] = [];
    c.pool.setObserver({ failover: (from) => failovers.push(from) });
    device(c, 'a').delayMs = 50;
    const calls = Array.from({ length: 20 }, () => c.pool.sign(key, randomBytes(16)));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok((await memberHealth(c, 'a')).inFlight > 0, 'calls are in flight on a');
    device(c, 'a').failure = 'CKR_DEVICE_ERROR';
    const results = await Promise.allSettled(calls);
    assert.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'no call failed');
    assert.ok(failovers.length > 0 && failovers.every((f) => f === 'a'), `failovers from a: ${failovers.join(',')}`);
  });

  it('does not retry a key generation (not idempotent): it fails with ERR_HSM_UNAVAILABLE and no other member made the key', async () => {
    const c = await open(['a', 'b'], { probeIntervalMs: 60_000 });
    // The first call of a fresh pool goes to the first member; its device is gone but nothing noticed yet.
    device(c, 'a').failure = 'CKR_DEVICE_ERROR';
    await assert.rejects(c.pool.generateKey('not-retried', 'aes256'), keyholdCode('ERR_HSM_UNAVAILABLE'));
    assert.equal(callsByMember(c).b, 0, 'member b was not asked');
    assert.equal(c.pool.findKey('not-retried', 'aes256'), null);
    assert.equal(c.store.keys.size, 0, 'no member made the key');
  });

  it('a bad ciphertext or a wrong key never counts against a member', async () => {
    const c = await open(['a', 'b']);
    const aes = await c.pool.generateKey('request-errors', 'aes256');
    const blob = await c.pool.aesGcmEncrypt(aes, Buffer.from('x'), Buffer.alloc(0));
    blob[blob.length - 1] = (blob[blob.length - 1] as number) ^ 1;
    for (let i = 0; i < 20; i++) {
      await assert.rejects(c.pool.aesGcmDecrypt(aes, blob, Buffer.alloc(0)), keyholdCode('ERR_CIPHERTEXT_INVALID'));
      await assert.rejects(c.pool.sign(aes, Buffer.from('x')), keyholdCode('ERR_KEY_OPERATION_UNSUPPORTED'));
      await assert.rejects(c.pool.hmacSha256(aes, Buffer.from('x')), keyholdCode('ERR_HSM'));
    }
    for (const m of (await c.pool.health()).members ?? []) {
      assert.equal(m.state, 'up');
      assert.equal(m.failures, 0);
    }
  });

  it('with every member gone, fails fast with ERR_HSM_UNAVAILABLE, and serves again once one answers (same pool)', async () => {
    const c = await open(['a', 'b']);
    const key = await c.pool.generateKey('all-down', 'ec-p256');
    device(c, 'a').failure = 'CKR_DEVICE_ERROR';
    device(c, 'b').failure = 'CKR_DEVICE_REMOVED';
    await assert.rejects(c.pool.sign(key, Buffer.from('x')), keyholdCode('ERR_HSM_UNAVAILABLE'));
    const started = performance.now();
    for (let i = 0; i < 10; i++) await assert.rejects(c.pool.sign(key, Buffer.from('x')), keyholdCode('ERR_HSM_UNAVAILABLE'));
    assert.ok(performance.now() - started < 100, 'fails fast');
    assert.throws(() => c.pool.findKey('all-down', 'ec-p256'), keyholdCode('ERR_HSM_UNAVAILABLE'));
    const health = await c.pool.health();
    assert.equal(health.ok, false);
    delete device(c, 'b').failure;
    await pollUntil('a call succeeds again', () => c.pool.sign(key, Buffer.from('x')).then(() => true, () => false), { timeoutMs: 3000, intervalMs: 20 });
    assert.equal((await c.pool.health()).ok, true);
  });

  it('never logs in again after a wrong PIN (the token counts failed logins)', async () => {
    const c = await open(['a', 'b']);
    const member = c.members.get('b') as TestMember;
    member.openError = new KeyholdError('ERR_HSM_PIN_INCORRECT', 'HSM login failed: the PIN is incorrect (not retried)');
    device(c, 'b').failure = 'CKR_USER_NOT_LOGGED_IN';
    await pollUntil('b out', async () => (await memberHealth(c, 'b')).state === 'down' && member.opens >= 2, { timeoutMs: 3000, intervalMs: 20 });
    const opens = member.opens;
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(member.opens, opens, 'no further login attempt');
    assert.equal((await memberHealth(c, 'b')).state, 'down');
  });

  it('setMembers: a new member takes calls; a removed one finishes its in-flight calls, then closes; nothing fails', async () => {
    const c = await open(['a', 'b'], { probeIntervalMs: 60_000 });
    const key = await c.pool.generateKey('set-members', 'hmac-sha256');
    device(c, 'a').delayMs = 30;
    const running = Array.from({ length: 40 }, () => c.pool.hmacSha256(key, randomBytes(8)));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const inFlightOnA = (await memberHealth(c, 'a')).inFlight;
    assert.ok(inFlightOnA > 0);
    const newMember: TestMember = { name: 'c', device: {}, opens: 0 };
    c.members.set('c', newMember);
    await c.pool.setMembers([c.members.get('b') as TestMember, newMember]);
    // setMembers resolved after a drained: every call it had in flight completed.
    const results = await Promise.allSettled(running);
    assert.deepEqual(results.filter((r) => r.status === 'rejected'), []);
    assert.deepEqual(c.pool.memberNames(), ['b', 'c']);
    await Promise.all(Array.from({ length: 60 }, () => c.pool.hmacSha256(key, randomBytes(8))));
    assert.ok((callsByMember(c).c ?? 0) > 0, 'the new member takes calls');
  });
});
