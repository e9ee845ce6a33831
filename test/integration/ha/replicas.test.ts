/**
 * Three real `keyhold server` processes on one real PostgreSQL and one SoftHSM token: what one
 * replica acknowledges, every other one serves at once; a replica killed with -9 loses nothing it
 * acknowledged; a PostgreSQL restart costs 503s, never 500s, and the replicas recover by themselves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../../helpers/server.js';
import { sleep } from '../../helpers/processes.js';
import { pollUntil } from '../../helpers/wait.js';
import { pollUntilUp, startReplicas, type Replica, type ReplicaSet } from '../../helpers/replicas.js';

/** A client's view of one request: an HTTP status, or a connection failure (the replica is gone). */
type Outcome = { status: number; code?: string } | { failed: string };

async function attempt(address: string, method: string, path: string, token: string, body?: unknown): Promise<Outcome & { body?: any }> {
  try {
    const r = await call(address, method, path, token, body);
    return { status: r.status, code: r.body?.error?.code, body: r.body };
  } catch (err) {
    return { failed: (err as Error).message };
  }
}

describe('three replicas on one PostgreSQL', { timeout: 15 * 60_000 }, () => {
  let set: ReplicaSet;
  let root: string;
  const on = (r: Replica | undefined, method: string, path: string, body?: unknown, token = root) => call((r as Replica).address, method, path, token, body);
  const live = () => set.replicas.filter((r) => r.process.exitCode === null && r.process.signalCode === null);

  before(async () => {
    set = await startReplicas(3);
    root = set.rootToken;
  });
  after(async () => set?.destroy());

  it('every replica serves, and exactly one leads', async () => {
    const ids = new Set<string>();
    for (const r of set.replicas) {
      const h = await on(r, 'GET', '/v1/sys/health');
      assert.equal(h.status, 200, h.text);
      ids.add(h.body.replica.id);
    }
    assert.equal(ids.size, 3);
    await pollUntilUp('one leader', 10_000, async () => (await set.leader()) !== undefined);
    const leader = await set.leader() as Replica;
    const health = await on(leader, 'GET', '/v1/sys/health');
    assert.deepEqual(health.body.replica.background_jobs.sort(), ['kubernetes-pod-revocation', 'oidc-flow-sweep', 'root-key-rewrite', 'token-sweep']);
    const metrics = await call(leader.address, 'GET', '/metrics');
    assert.match(metrics.text, /^keyhold_leader 1$/m);
  });

  it('a write on one replica is read on another at once: secret versions, key rotations, policies', async () => {
    const [a, b, c] = set.replicas;
    assert.equal((await on(a, 'POST', '/v1/keys', { name: 'ha-key', type: 'aes256-gcm', protection: 'wrapped' })).status, 200);
    const limited = (await on(a, 'POST', '/v1/tokens', { policies: ['ha-policy'] })).body.token as string;
    for (let i = 0; i < 40; i++) {
      const [writer, reader] = [[a, b], [b, c], [c, a]][i % 3] as [Replica, Replica];
      // Secret: each reader has the previous version cached; the new one must show at once.
      const put = await on(writer, 'PUT', '/v1/secrets/ha/secret', { data: { round: String(i) } });
      assert.equal(put.status, 200, put.text);
      const read = await on(reader, 'GET', '/v1/secrets/ha/secret');
      assert.equal(read.status, 200, read.text);
      assert.equal(read.body.version, put.body.version, `round ${i}: version`);
      assert.equal(read.body.data.round, String(i), `round ${i}: data`);
      // Key: the reader encrypts with the version the writer just made.
      const rotated = await on(writer, 'POST', '/v1/keys/ha-key/rotate');
      assert.equal(rotated.status, 200, rotated.text);
      const encrypted = await on(reader, 'POST', '/v1/keys/ha-key/encrypt', { plaintext: Buffer.from(`p${i}`).toString('base64') });
      assert.equal(encrypted.status, 200, encrypted.text);
      assert.match(encrypted.body.ciphertext, new RegExp(`^keyhold:ha-key:v${i + 2}:`), `round ${i}: key version`);
      const decrypted = await on(writer, 'POST', '/v1/keys/ha-key/decrypt', { ciphertext: encrypted.body.ciphertext });
      assert.equal(Buffer.from(decrypted.body.plaintext, 'base64').toString(), `p${i}`);
      // Policy: granted, then taken away, as seen by the token on the other replica.
      const grant = i % 2 === 0;
      assert.equal((await on(writer, 'PUT', '/v1/policies/ha-policy', { rules: grant ? [{ path: 'secrets/ha/*', capabilities: ['read'] }] : [] })).status, 200);
      const asLimited = await on(reader, 'GET', '/v1/secrets/ha/secret', undefined, limited);
      assert.equal(asLimited.status, grant ? 200 : 403, `round ${i}: policy ${grant ? 'granted' : 'revoked'}`);
    }
  });

  it('a token revoked on one replica is refused by all of them at once (well within 1 s)', async () => {
    const delays: number[] = [];
    assert.equal((await on(set.replicas[0], 'PUT', '/v1/policies/ha-self', { rules: [{ path: 'secrets/self/*', capabilities: ['read'] }] })).status, 200);
    for (let i = 0; i < 20; i++) {
      const issuer = set.replicas[i % 3] as Replica;
      const t = (await on(issuer, 'POST', '/v1/tokens', { policies: ['ha-self'] })).body;
      // Every replica has it cached now.
      for (const r of set.replicas) assert.equal((await on(r, 'GET', '/v1/tokens/self', undefined, t.token)).status, 200);
      assert.equal((await on(issuer, 'DELETE', `/v1/tokens/accessors/${t.accessor}`)).status, 204);
      const revokedAt = Date.now();
      await Promise.all(set.replicas.map(async (r) => {
        for (;;) {
          const s = (await on(r, 'GET', '/v1/tokens/self', undefined, t.token)).status;
          if (s === 401) break;
          assert.equal(s, 200);
          assert.ok(Date.now() - revokedAt < 1000, 'still accepted 1 s after the revocation');
          await sleep(10);
        }
        delays.push(Date.now() - revokedAt);
      }));
    }
    delays.sort((x, y) => x - y);
    process.stderr.write(`revocation seen by every replica: median ${delays[delays.length >> 1]} ms, max ${delays.at(-1)} ms (first request after the revocation was refused: ${delays.filter((d) => d < 1000).length}/${delays.length})\n`);
    assert.ok((delays.at(-1) as number) < 1000);
  });

  /**
   * Clients writing unique secrets, each to its own replica; a client whose replica is gone (a
   * connection failure, never an HTTP error) retries on another. Returns what was acknowledged.
   */
  function writeLoad(clients: number, prefix: string, allowed: (o: { status: number; code?: string }) => boolean, replicasMayDie = false) {
    const acknowledged = new Map<string, string>();
    const refused: Array<{ status: number; code?: string }> = [];
    const unexpected: string[] = [];
    let stop = false;
    const runs = Array.from({ length: clients }, async (_, c) => {
      let target = c % 3;
      for (let n = 0; !stop; n++) {
        const path = `${prefix}/c${c}/n${n}`;
        const value = `${c}-${n}-${Math.random()}`;
        for (let tries = 0; ; tries++) {
          const replica = set.replicas[target] as Replica;
          const o = await attempt(replica.address, 'PUT', `/v1/secrets/${path}`, root, { data: { value } });
          if ('failed' in o) {
            if (!replicasMayDie) { unexpected.push(`${path}: ${o.failed}`); break; }
            target = (target + 1) % 3; // that replica is gone: retry on the next
            if (tries > 20) { unexpected.push(`${path}: ${o.failed}`); break; }
            continue;
          }
          if (o.status === 200) acknowledged.set(path, value);
          else if (allowed(o)) { refused.push({ status: o.status, code: o.code }); await sleep(20); }
          else unexpected.push(`${path}: ${o.status} ${o.code}`);
          break;
        }
      }
    });
    return {
      acknowledged, refused, unexpected,
      async stop() {
        stop = true;
        await Promise.all(runs);
      },
    };
  }

  async function readBack(acknowledged: Map<string, string>): Promise<void> {
    const readers = live();
    let i = 0;
    const entries = [...acknowledged];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (;;) {
        const next = entries[i++];
        if (!next) return;
        const [path, value] = next;
        const r = await on(readers[i % readers.length], 'GET', `/v1/secrets/${path}`);
        assert.equal(r.status, 200, `${path}: ${r.text}`);
        assert.equal(r.body.data.value, value, path);
      }
    }));
  }

  it('kill -9 of one replica during a 30 s write load: every acknowledged write reads back, retries elsewhere see no other failure', async () => {
    const load = writeLoad(6, 'kill', () => false, true);
    await sleep(10_000);
    const victim = set.replicas[2] as Replica;
    victim.process.kill('SIGKILL');
    await sleep(20_000);
    await load.stop();
    assert.deepEqual(load.unexpected, []);
    assert.ok(load.acknowledged.size > 50, `only ${load.acknowledged.size} writes acknowledged`);
    await readBack(load.acknowledged);
    process.stderr.write(`kill -9 under load: ${load.acknowledged.size} writes acknowledged, all read back\n`);
    await set.start(2);
  });

  for (const mode of ['fast', 'immediate'] as const) {
    it(`PostgreSQL restarted (${mode}) during a write load: acknowledged writes read back, 503 meanwhile (never 500), the replicas recover by themselves`, async () => {
      const load = writeLoad(6, `restart-${mode}`, (o) => o.status === 503);
      try {
        await sleep(3000);
        set.pg.stop(mode);
        await sleep(3000);
        set.pg.start();
        // Every replica serves reads and writes again without being restarted.
        for (const r of set.replicas) {
          // The last answer goes into the timeout's message: a replica that never recovers says why.
          let last = 'no answer yet';
          await pollUntil(`replica ${r.index} writing again`, async () => {
            const o = await attempt(r.address, 'PUT', '/v1/secrets/probe', root, { data: { at: String(Date.now()) } });
            last = 'failed' in o ? o.failed : `${o.status} ${o.code ?? ''} ${JSON.stringify(o.body?.error?.message ?? '')}`;
            return 'status' in o && o.status === 200;
          }, { timeoutMs: 30_000, intervalMs: 50, detail: () => `last answer: ${last}\nreplica log:\n${r.output().split('\n').slice(-40).join('\n')}` });
        }
        await sleep(2000);
      } finally {
        // Also when a wait above fails: a load left running would spin against stopped replicas forever.
        await load.stop();
      }
      assert.deepEqual(load.unexpected, []);
      assert.ok(load.refused.length > 0, 'no request was refused while PostgreSQL was down');
      const codes = new Set(load.refused.map((o) => o.code));
      for (const code of codes) assert.match(String(code), /^ERR_[A-Z_]+$/);
      await readBack(load.acknowledged);
      for (const r of set.replicas) assert.equal((await on(r, 'GET', '/v1/sys/health')).status, 200);
      process.stderr.write(`PostgreSQL ${mode} restart: ${load.acknowledged.size} writes acknowledged and read back, ${load.refused.length} refused with 503 (${[...codes].join(', ')})\n`);
    });
  }
});
