/**
 * Where the issue-11 parts meet, recovery side (real server processes, real SoftHSM, a real
 * p11-kit member): a store initialised with 5 recovery shares (threshold 3) has its root key
 * rotated; copies are taken while the rewrite is under way (records of both generations) and
 * after it finished; the token is then lost for good, and each copy is moved to a new token with
 * `keyhold seal migrate` and 3 shares — the finished one onto an RSA/EC-only p11-kit cluster with a member down,
 * the half-rewritten one onto SoftHSM. Every key and secret, from before and after the rotation,
 * reads back; the half-rewritten one then finishes its rewrite.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startP11KitFleet, type P11KitFleet, type P11KitMember } from '../../helpers/p11kit.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';
import { startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { ok, readBack, runCliTimed, storedGenerations, storedSealRecord, writeSome as writeSomeTo, type Written } from './support.js';

const work = tempDir('keyhold-fleet-recovery-');
const tokenA = makeSoftHsmToken('kh-cross-recovery-a');
const envA: NodeJS.ProcessEnv = { SOFTHSM2_CONF: tokenA.confPath };
const KEYS = [
  { name: 'aes', type: 'aes256-gcm', protection: 'wrapped' },
  { name: 'rsa', type: 'rsa-2048', protection: 'wrapped' },
] as const;

const writeSome = (server: DevServer, written: Written, tag: string, count: number) => writeSomeTo(server, written, tag, count, KEYS.map((k) => k.name));
const copy = (w: Written): Written => ({ secrets: new Map(w.secrets), ciphertexts: [...w.ciphertexts] });

/** A store dir and a config over `hsm` in it; the rewrite's pace set per config. */
function configIn(dir: string, name: string, hsm: object, rootRotation: Record<string, number>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: path.join(dir, 'keyhold.db') } },
    hsm,
    audit: { path: path.join(dir, 'audit.log') },
    rootRotation,
  }));
  return file;
}

const rotation = async (server: DevServer): Promise<any> => ok(server, 'GET', '/v1/sys/seal/rotation');
const generations = (dir: string): number[] => [...new Set(storedGenerations(path.join(dir, 'keyhold.db')).values())].sort();

const sealRecord = (dir: string): Record<string, any> => storedSealRecord(path.join(dir, 'keyhold.db'));

const original = path.join(work, 'original');
const midCopy = path.join(work, 'mid');
const doneCopy = path.join(work, 'done');
let shares: string[] = [];
let writtenMid: Written;
let writtenDone: Written;
let fleet: P11KitFleet | undefined;
const servers: DevServer[] = [];

async function serve(config: string, env: NodeJS.ProcessEnv, dir: string): Promise<DevServer> {
  const server = await startServer(config, env, dir);
  servers.push(server);
  return server;
}

before(async () => {
  fs.mkdirSync(original, { recursive: true });
  const slow = configIn(original, 'slow', tokenA.config, { batchSize: 1, pauseMs: 500 });
  const run = await runCliTimed(['init', '--config', slow, '--root-token-file', path.join(original, 'root-token'), '--recovery-shares', '5', '--recovery-threshold', '3'], envA, 90_000);
  assert.equal(run.code, 0, run.stderr);
  shares = (JSON.parse(run.stdout) as { recoveryShares: { shares: Array<{ share: string }> } }).recoveryShares.shares.map((s, i) => {
    const file = path.join(work, `share-${i + 1}`);
    fs.writeFileSync(file, `${s.share}\n`, { mode: 0o600 });
    return file;
  });

  const written: Written = { secrets: new Map(), ciphertexts: [] };
  let server = await serve(slow, envA, original);
  for (const key of KEYS) await ok(server, 'POST', '/v1/keys', key);
  await writeSome(server, written, 'before', 30);
  const rotated = await ok(server, 'POST', '/v1/sys/seal/rotate-root');
  assert.equal(rotated.generation, 2);
  await writeSome(server, written, 'during', 10);
  assert.equal((await rotation(server)).rewriting, true);
  assert.equal(await server.stop(), 0, server.output());
  assert.deepEqual(generations(original), [1, 2], 'stopped with records of both generations');
  fs.cpSync(original, midCopy, { recursive: true });
  writtenMid = copy(written);

  const fast = configIn(original, 'fast', tokenA.config, { batchSize: 100, pauseMs: 0 });
  server = await serve(fast, envA, original);
  await pollUntil('the rewrite finished', async () => (await rotation(server)).rewriting === false, { timeoutMs: 60_000, intervalMs: 100 });
  await writeSome(server, written, 'after', 10);
  assert.equal(await server.stop(), 0, server.output());
  assert.deepEqual(generations(original), [2]);
  fs.cpSync(original, doneCopy, { recursive: true });
  writtenDone = copy(written);

  // The HSM is lost for good.
  fs.rmSync(path.join(tokenA.dir, 'tokens'), { recursive: true, force: true });
});

after(async () => {
  for (const s of servers) await s.stop('SIGKILL').catch(() => undefined);
  await fleet?.stop();
  for (const dir of [work, tokenA.dir, fleet?.token.dir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('recovery shares, a root rotation, then `keyhold seal migrate` after the token is lost', { timeout: 300_000 }, () => {
  it('the finished rotation: migrated with 3 shares onto an RSA/EC-only two-member p11-kit cluster (one member down), everything reads back, and it rotates again', async () => {
    fleet = await startP11KitFleet(2, 'kh-cross-recovery-b');
    const [a, b] = fleet.members as [P11KitMember, P11KitMember];
    const env = {};
    const config = configIn(doneCopy, 'new', { members: fleet.members.map((m) => ({ name: m.name, ...m.config })) }, { batchSize: 100, pauseMs: 0 });
    await b.kill();
    const migrate = await runCliTimed(['seal', 'migrate', '--config', config, ...[0, 2, 4].flatMap((i) => ['--share-file', shares[i]!])], env, 120_000);
    assert.equal(migrate.code, 0, migrate.stderr);
    await b.start();
    // The migrated seal is on the cluster's one set of keys: the member that was down unseals it alone.
    await a.kill();
    const alone = await serve(config, env, doneCopy);
    await readBack(alone, writtenDone);
    assert.equal(await alone.stop(), 0, alone.output());
    await a.start();
    const record = sealRecord(doneCopy);
    assert.equal(record.method, 'rsa-oaep');
    assert.equal(record.recovery?.threshold, 3);

    let server = await serve(config, env, doneCopy);
    await readBack(server, writtenDone);
    // The migrated store rotates again, and its recovery record follows the new root key.
    assert.equal((await ok(server, 'POST', '/v1/sys/seal/rotate-root')).generation, 3);
    await pollUntil('the second rewrite finished', async () => (await rotation(server)).rewriting === false, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(await server.stop(), 0, server.output());
    assert.deepEqual(generations(doneCopy), [3]);
    server = await serve(config, env, doneCopy);
    await readBack(server, writtenDone);
    assert.equal(await server.stop(), 0, server.output());
  });

  it('the rewrite not finished (records of both generations): migrated with 3 other shares onto SoftHSM, everything reads back and the rewrite finishes', async () => {
    const tokenC = makeSoftHsmToken('kh-cross-recovery-c');
    try {
      const env = { SOFTHSM2_CONF: tokenC.confPath };
      const config = configIn(midCopy, 'new', tokenC.config, { batchSize: 100, pauseMs: 0 });
      assert.deepEqual(generations(midCopy), [1, 2]);
      const migrate = await runCliTimed(['seal', 'migrate', '--config', config, ...[1, 2, 3].flatMap((i) => ['--share-file', shares[i]!])], env, 120_000);
      assert.equal(migrate.code, 0, migrate.stderr);
      const server = await serve(config, env, midCopy);
      await readBack(server, writtenMid);
      await pollUntil('the rewrite finished', async () => (await rotation(server)).rewriting === false, { timeoutMs: 60_000, intervalMs: 100 });
      await readBack(server, writtenMid);
      assert.equal(await server.stop(), 0, server.output());
      assert.deepEqual(generations(midCopy), [2]);
    } finally {
      fs.rmSync(tokenC.dir, { recursive: true, force: true });
    }
  });
});
