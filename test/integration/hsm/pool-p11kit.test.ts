/**
 * The HSM pool against a real network-HSM cluster: p11-kit servers in front of one SoftHSM token
 * (test/helpers/p11kit.ts), killed by process group for real outages. Through the hop the token
 * has no AES-GCM: the calls here are what an RSA/EC-only device does (raw ECDSA, RSA-OAEP-SHA-1
 * decrypt, key-pair generation).
 */
import assert from 'node:assert/strict';
import { constants as cryptoConstants, createPublicKey, publicEncrypt, randomBytes, verify, type KeyObject } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { isKeyholdError } from '../../../src/errors.js';
import type { HsmMemberConfig } from '../../../src/hsm/config.js';
import { openHsm, type Pkcs11Pool } from '../../../src/hsm/open.js';
import type { GeneratedHsmKey, HsmMemberHealth } from '../../../src/hsm/types.js';
import { hsmContract } from '../../contract/hsm.js';
import { keyholdCode } from '../../helpers/errors.js';
import { p11KitClientModule, startP11KitFleet, type P11KitFleet, type P11KitMember } from '../../helpers/p11kit.js';
import { tempDir } from '../../helpers/temp.js';
import { pollUntil } from '../../helpers/wait.js';

const CONCURRENCY = 16;
let fleet: P11KitFleet;
const pools: Pkcs11Pool[] = [];
const logs: string[] = [];

function memberConfig(member: P11KitMember): HsmMemberConfig {
  return { name: member.name, ...member.config };
}

async function pool(members: readonly P11KitMember[], extra: { probeIntervalMs?: number } = {}): Promise<Pkcs11Pool> {
  const opened = await openHsm({ members: members.map(memberConfig) }, { warn: (m) => logs.push(m), ...extra });
  pools.push(opened);
  return opened;
}

async function memberState(hsm: Pkcs11Pool, name: string): Promise<HsmMemberHealth | undefined> {
  return (await hsm.health()).members?.find((m) => m.name === name);
}

/** Calls per member, from the pool's observer. */
function countCalls(hsm: Pkcs11Pool): Map<string, number> {
  const counts = new Map<string, number>();
  hsm.setObserver({ call: (member) => counts.set(member, (counts.get(member) ?? 0) + 1) });
  return counts;
}

interface Keys {
  ec: GeneratedHsmKey;
  rsa: GeneratedHsmKey;
  rsaPublic: KeyObject;
  ecPublic: KeyObject;
  ciphertext: Buffer;
  plaintext: Buffer;
}
let keys: Keys;

/** One call of the load: ECDSA sign or RSA-OAEP decrypt, alternating by worker, checked. */
async function oneCall(hsm: Pkcs11Pool, worker: number): Promise<void> {
  if (worker % 2 === 0) {
    const data = randomBytes(32);
    const signature = await hsm.sign(keys.ec, data);
    assert.ok(verify('sha256', data, { key: keys.ecPublic, dsaEncoding: 'ieee-p1363' }, signature));
  } else {
    assert.deepEqual(await hsm.rsaDecrypt(keys.rsa, keys.ciphertext, 'sha1'), keys.plaintext);
  }
}

interface LoadResult {
  /** Completion times (ms since start) of successful calls. */
  done: number[];
  failures: Array<{ at: number; error: string }>;
}

/** CONCURRENCY workers calling for `ms`; `during` runs alongside (the kill, the restart). */
async function load(hsm: Pkcs11Pool, ms: number, during?: (started: number) => Promise<void>): Promise<LoadResult> {
  const started = performance.now();
  const result: LoadResult = { done: [], failures: [] };
  const end = started + ms;
  await Promise.all([
    ...Array.from({ length: CONCURRENCY }, async (_, worker) => {
      while (performance.now() < end) {
        try {
          await oneCall(hsm, worker);
          result.done.push(performance.now() - started);
        } catch (err) {
          result.failures.push({ at: performance.now() - started, error: isKeyholdError(err) ? `${err.code}: ${err.message}` : String(err) });
        }
      }
    }),
    during?.(started),
  ]);
  return result;
}

function rate(result: LoadResult, fromMs: number, toMs: number): number {
  return result.done.filter((t) => t >= fromMs && t < toMs).length / ((toMs - fromMs) / 1000);
}

before(async () => {
  fleet = await startP11KitFleet(3, 'keyhold-pool');
  const setup = await pool(fleet.members);
  const ec = await setup.generateKey(`pool-ec-${process.pid}`, 'ec-p256');
  const rsa = await setup.generateKey(`pool-rsa-${process.pid}`, 'rsa-2048');
  const rsaPublic = createPublicKey({ key: rsa.publicKeySpki as Buffer, format: 'der', type: 'spki' });
  const plaintext = randomBytes(32);
  keys = {
    ec, rsa, rsaPublic, plaintext,
    ecPublic: createPublicKey({ key: ec.publicKeySpki as Buffer, format: 'der', type: 'spki' }),
    // Encrypted locally with the public key, decrypted on the device: the only OAEP hash SoftHSM has is SHA-1.
    ciphertext: publicEncrypt({ key: rsaPublic, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, plaintext),
  };
});

after(async () => {
  await Promise.allSettled(pools.map((p) => p.close()));
  await fleet?.stop();
});

describe('HsmPool over real p11-kit members', () => {
  it('one member: a call during the outage gets ERR_HSM_UNAVAILABLE (never ERR_HSM), health turns false within 5 s, and the next call after the member is back succeeds within 5 s on the same pool', async () => {
    const member = fleet.members[0] as P11KitMember;
    const hsm = await pool([member]);
    await oneCall(hsm, 0);
    await member.kill();
    const killedAt = performance.now();
    await assert.rejects(oneCall(hsm, 0), keyholdCode('ERR_HSM_UNAVAILABLE'));
    await assert.rejects(oneCall(hsm, 1), keyholdCode('ERR_HSM_UNAVAILABLE'));
    await pollUntil('health false', async () => !(await hsm.health()).ok, { timeoutMs: 5000, intervalMs: 50 });
    assert.ok(performance.now() - killedAt < 5000);
    await member.start();
    const backAt = performance.now();
    await pollUntil('a call succeeds again', () => oneCall(hsm, 1).then(() => true, () => false), { timeoutMs: 5000, intervalMs: 50 });
    const recoveredMs = performance.now() - backAt;
    assert.ok(recoveredMs < 5000, `recovered after ${recoveredMs} ms`);
    assert.equal((await hsm.health()).ok, true);
    await oneCall(hsm, 0);
  });

  it('three members: killing one under load fails no call beyond those in flight on it, keeps serving at no less than half the one-member rate (bench/fleet.ts measures the speed), and the member rejoins within 5 s', async (t: TestContext) => {
    for (const m of fleet.members) await m.start();
    // The one-member figure, measured on this (shared, busy) machine before and after the run, so a
    // change in the machine's load during the run does not pass for the pool's doing.
    const oneMember = async (): Promise<number> => {
      const single = await pool([fleet.members[1] as P11KitMember]);
      const baseline = await load(single, 6000);
      assert.deepEqual(baseline.failures, []);
      await single.close();
      return rate(baseline, 1000, 6000);
    };
    const oneMemberBefore = await oneMember();

    const hsm = await pool(fleet.members);
    const victim = fleet.members[0] as P11KitMember;
    const calls = countCalls(hsm);
    let inFlightAtKill = -1;
    let killAt = 0;
    let restartAt = 0;
    let rejoinMs = -1;
    const result = await load(hsm, 30_000, async (started) => {
      await new Promise((resolve) => setTimeout(resolve, 8000));
      inFlightAtKill = (await memberState(hsm, victim.name))?.inFlight ?? -1;
      killAt = performance.now() - started;
      await victim.kill();
      await new Promise((resolve) => setTimeout(resolve, 12_000));
      restartAt = performance.now() - started;
      await victim.start();
      const before = calls.get(victim.name) ?? 0;
      await pollUntil('the member rejoins and takes calls', async () => (await memberState(hsm, victim.name))?.state === 'up' && (calls.get(victim.name) ?? 0) > before, { timeoutMs: 10_000, intervalMs: 20 });
      rejoinMs = performance.now() - started - restartAt;
    });
    const before = rate(result, 1000, killAt);
    const afterKill = rate(result, killAt + 1000, restartAt);
    const oneMemberAfter = await oneMember();
    const oneMemberRate = (oneMemberBefore + oneMemberAfter) / 2;
    const figures = {
      one_member_ops_per_s: Math.round(oneMemberRate),
      one_member_before_after: [Math.round(oneMemberBefore), Math.round(oneMemberAfter)],
      three_members_ops_per_s: Math.round(before),
      two_members_after_kill_ops_per_s: Math.round(afterKill),
      after_kill_vs_one_member: Number((afterKill / oneMemberRate).toFixed(2)),
      in_flight_on_killed_member: inFlightAtKill,
      failed_calls: result.failures.length,
      rejoin_ms: Math.round(rejoinMs),
      total_calls: result.done.length,
    };
    t.diagnostic(`failover figures: ${JSON.stringify(figures)}`);
    process.stderr.write(`pool failover figures: ${JSON.stringify(figures)}\n`);
    assert.ok(inFlightAtKill >= 0);
    assert.ok(result.failures.length <= inFlightAtKill, `failed calls beyond those in flight on the killed member: ${JSON.stringify(result.failures.slice(0, 5))}`);
    // The ≥ 90% figure is a speed measurement, made by bench/fleet.ts (.bench-out/fleet.json,
    // hsm_sign_failover) on an otherwise idle machine. Here, beside another test file on two cores,
    // the ratio swung between 0.84 and 1.05 from run to run; this floor still catches a pool that
    // keeps sending work to the dead member or serialises the survivors.
    assert.ok(afterKill >= 0.5 * oneMemberRate, `throughput after the kill ${afterKill.toFixed(0)}/s < half of one member's ${oneMemberRate.toFixed(0)}/s`);
    assert.ok(rejoinMs >= 0 && rejoinMs < 5000, `rejoined after ${rejoinMs} ms`);
  });

  it('every member killed: calls fail with ERR_HSM_UNAVAILABLE within 5 s; all restarted: calls succeed within 5 s, same pool', async () => {
    for (const m of fleet.members) await m.start();
    const hsm = await pool(fleet.members);
    await oneCall(hsm, 0);
    await Promise.all(fleet.members.map((m) => m.kill()));
    const killedAt = performance.now();
    const seen = new Set<string>();
    await pollUntil('ERR_HSM_UNAVAILABLE', () => oneCall(hsm, 0).then(() => false, (err: unknown) => {
      seen.add(isKeyholdError(err) ? err.code : String(err));
      return isKeyholdError(err, 'ERR_HSM_UNAVAILABLE');
    }), { timeoutMs: 5000, intervalMs: 20 });
    assert.ok(performance.now() - killedAt < 5000);
    assert.deepEqual([...seen], ['ERR_HSM_UNAVAILABLE'], 'only ever ERR_HSM_UNAVAILABLE');
    await pollUntil('health false', async () => !(await hsm.health()).ok, { timeoutMs: 5000, intervalMs: 50 });
    await Promise.all(fleet.members.map((m) => m.start()));
    const backAt = performance.now();
    await pollUntil('calls succeed again', () => oneCall(hsm, 1).then(() => true, () => false), { timeoutMs: 5000, intervalMs: 20 });
    assert.ok(performance.now() - backAt < 5000);
    await pollUntil('every member up again', async () => (await hsm.health()).members?.every((m) => m.state === 'up'), { timeoutMs: 5000, intervalMs: 50 });
  });

  it('setMembers: an added member takes calls; a removed one is drained under load with no failed call', async () => {
    for (const m of fleet.members) await m.start();
    const [a, b] = fleet.members as [P11KitMember, P11KitMember];
    const hsm = await pool([a, b]);
    const calls = countCalls(hsm);
    const added = fleet.members[3] ?? (await fleet.addMember('d'));
    const result = await load(hsm, 6000, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await hsm.setMembers([a, b, added].map(memberConfig));
      await pollUntil('the added member takes calls', () => (calls.get(added.name) ?? 0) > 0, { timeoutMs: 5000, intervalMs: 20 });
      await hsm.setMembers([b, added].map(memberConfig));
      assert.deepEqual(hsm.memberNames(), [b.name, added.name]);
    });
    assert.deepEqual(result.failures, []);
    const before = calls.get(a.name) ?? 0;
    await load(hsm, 500);
    assert.equal(calls.get(a.name) ?? 0, before, 'the removed member takes no calls');
  });

  it('an endpoint file + member template: one module file for every member (private copies, each with its own address), changes applied without a restart', async () => {
    for (const m of fleet.members) await m.start();
    const [a, b, c] = fleet.members as [P11KitMember, P11KitMember, P11KitMember];
    const dir = tempDir('keyhold-endpoints-');
    const file = join(dir, 'endpoints.json');
    const copies = join(dir, 'module-copies');
    const list = (...members: P11KitMember[]) => JSON.stringify({ cluster: 'test', endpoints: members.map((m) => ({ name: m.name, address: m.address })) });
    writeFileSync(file, list(a, b));
    const hsm = await openHsm({
      endpoints: { file },
      memberTemplate: { module: p11KitClientModule(), env: { P11_KIT_SERVER_ADDRESS: '${address}' }, tokenLabel: fleet.token.label, pinFile: fleet.token.pinFile },
      moduleCopyDir: copies,
    }, { warn: (m) => logs.push(m) });
    pools.push(hsm);
    assert.deepEqual(hsm.memberNames(), ['a', 'b']);
    const [folder] = readdirSync(copies);
    assert.ok(folder);
    assert.equal(statSync(join(copies, folder)).mode & 0o777, 0o700);
    // Each member reaches its own server: with a killed, every call still succeeds (on b).
    await a.kill();
    const result = await load(hsm, 1500);
    assert.deepEqual(result.failures, []);
    await a.start();
    writeFileSync(file, list(b, c));
    await pollUntil('members b, c', () => hsm.memberNames().join() === 'b,c', { timeoutMs: 3000, intervalMs: 50 });
    const calls = countCalls(hsm);
    await pollUntil('c takes calls', async () => { await load(hsm, 200); return (calls.get('c') ?? 0) > 0; }, { timeoutMs: 5000, intervalMs: 10 });
    await hsm.close();
    assert.deepEqual(readdirSync(copies), [], 'the module copies are removed at close');
  });

  it('a different object under a known label is refused, not used', async () => {
    for (const m of fleet.members) await m.start();
    const hsm = await pool(fleet.members);
    const label = `replaced-${process.pid}`;
    const original = await hsm.generateKey(label, 'ec-p256');
    // Someone else (another process, through another member) destroys it and makes another key under the label.
    const other = await openHsm(memberConfig(fleet.members[2] as P11KitMember), {});
    await other.destroyKey(original);
    await other.generateKey(label, 'ec-p256');
    await other.close();
    // Each member's cached handle now names nothing (ERR_HSM, once per member); looked up again, the
    // label names an object with another CKA_ID: refused.
    const codes: string[] = [];
    for (let i = 0; i < 9; i++) {
      await hsm.sign(original, Buffer.from('x')).then(() => codes.push('ok'), (err: unknown) => codes.push(isKeyholdError(err) ? err.code : String(err)));
    }
    assert.ok(codes.every((c) => c === 'ERR_HSM' || c === 'ERR_HSM_KEY_MISSING'), codes.join());
    assert.deepEqual(codes.slice(-3), ['ERR_HSM_KEY_MISSING', 'ERR_HSM_KEY_MISSING', 'ERR_HSM_KEY_MISSING'], codes.join());
    for (const m of (await hsm.health()).members ?? []) assert.equal(m.state, 'up', 'a refused key never trips a breaker');
  });
});

describe('the HSM contract on a pool of two p11-kit members (skips by capability: no AES-GCM through the hop)', () => {
  hsmContract('HsmPool over two p11-kit members', async () => {
    for (const m of fleet.members) await m.start();
    return openHsm({ members: fleet.members.slice(0, 2).map(memberConfig) });
  }, ['aesGcm', 'aesKeyWrapPad']);
});
