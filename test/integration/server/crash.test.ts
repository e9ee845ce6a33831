/**
 * Crash safety of a real `keyhold dev`: 20 rounds on one data dir, each killing the server with
 * SIGKILL in the middle of concurrent secret writes and key rotations. Whatever was acknowledged
 * (a 2xx response reached the client) must read back exactly after every restart, and the audit log
 * must verify (a torn final line left by the kill is repaired when the log is opened).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { call, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from './support.js';

const ROUNDS = 20;
const IN_FLIGHT = 32;
/** Writes per secret path before a worker moves on: stays under the default max_versions (10). */
const VERSIONS_PER_PATH = 8;

interface AckedWrite { path: string; version: number; data: Record<string, string> }
interface AckedRotation { key: string; version: number }
interface AckedCiphertext { key: string; version: number; ciphertext: string; plaintext: string }

const KEYS = ['crash-hsm', 'crash-wrapped'] as const;

/** Runs `fn` over `items` with at most `limit` in flight; collects failures instead of throwing at the first. */
async function each<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<string | undefined>): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const problem = await fn(items[next++] as T);
      if (problem) problems.push(problem);
    }
  }));
  return problems;
}

describe('keyhold dev survives kill -9 during concurrent writes', { timeout: 175_000 }, () => {
  const dataDir = tempDir('keyhold-crash-');
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it(`keeps every acknowledged write over ${ROUNDS} SIGKILL rounds on one data dir`, async () => {
    const started = Date.now();
    const writes: AckedWrite[] = [];
    const rotations: AckedRotation[] = [];
    const ciphertexts: AckedCiphertext[] = [];
    let refused = 0;
    let tornTails = 0;
    let rootToken = '';

    const verifyAll = async (server: DevServer, label: string) => {
      const problems = await each(writes, 64, async (w) => {
        const r = await call(server.address, 'GET', `/v1/secrets/${w.path}?version=${w.version}`, rootToken);
        if (r.status !== 200) return `${w.path} v${w.version}: ${r.status} ${r.text}`;
        try {
          assert.deepEqual(r.body.data, w.data);
          assert.equal(r.body.version, w.version);
        } catch {
          return `${w.path} v${w.version}: read ${JSON.stringify(r.body)}, acknowledged ${JSON.stringify(w.data)}`;
        }
        return undefined;
      });
      for (const key of KEYS) {
        const r = await call(server.address, 'GET', `/v1/keys/${key}`, rootToken);
        assert.equal(r.status, 200, `${label}: key ${key}: ${r.text}`);
        const have = new Set((r.body.versions as Array<{ version: number }>).map((v) => v.version));
        for (const rot of rotations.filter((x) => x.key === key)) {
          if (!have.has(rot.version)) problems.push(`${key}: acknowledged version ${rot.version} missing (latest ${r.body.latest_version})`);
        }
      }
      problems.push(...await each(ciphertexts, 16, async (c) => {
        const r = await call(server.address, 'POST', `/v1/keys/${c.key}/decrypt`, rootToken, { ciphertext: c.ciphertext });
        if (r.status !== 200) return `${c.key} v${c.version} ciphertext: ${r.status} ${r.text}`;
        return Buffer.from(r.body.plaintext, 'base64').toString('utf8') === c.plaintext ? undefined : `${c.key} v${c.version}: wrong plaintext`;
      }));
      assert.deepEqual(problems.slice(0, 20), [], `${label}: ${problems.length} acknowledged writes lost or changed`);
    };

    const verifyAudit = async (label: string) => {
      const r = await runCliTimed(['audit', 'verify', '--file', path.join(dataDir, 'audit.log')], {}, 30_000);
      assert.equal(r.code, 0, `${label}: audit verify failed: ${r.stdout}${r.stderr}`);
      return (JSON.parse(r.stdout) as { entries: number }).entries;
    };

    for (let round = 1; round <= ROUNDS; round++) {
      const server = await startDev(dataDir);
      rootToken = server.rootToken;
      // Everything acknowledged in earlier rounds is there, then the audit log verifies (server idle:
      // every audited request has had its response, so no append is in flight).
      await verifyAll(server, `after restart ${round}`);
      if (round > 1) await verifyAudit(`round ${round}`);
      if (round === 1) {
        for (const [name, protection] of [[KEYS[0], 'hsm'], [KEYS[1], 'wrapped']] as const) {
          const r = await call(server.address, 'POST', '/v1/keys', rootToken, { name, type: 'aes256-gcm', protection });
          assert.equal(r.status, 200, r.text);
          rotations.push({ key: name, version: 1 });
        }
      }

      let killed = false;
      const worker = async (w: number) => {
        for (let i = 0; !killed; i++) {
          const secretPath = `crash/r${round}/w${w}/s${Math.floor(i / VERSIONS_PER_PATH)}`;
          const data = { value: `r${round}-w${w}-i${i}-${randomBytes(6).toString('hex')}`, round: String(round) };
          try {
            const r = await call(server.address, 'PUT', `/v1/secrets/${secretPath}`, rootToken, { data });
            if (r.status >= 200 && r.status < 300) writes.push({ path: secretPath, version: r.body.version as number, data });
            else refused++;
          } catch {
            // Connection died with the server: not acknowledged.
          }
        }
      };
      const rotator = async () => {
        for (let i = 0; !killed; i++) {
          const key = KEYS[i % KEYS.length] as string;
          try {
            const r = await call(server.address, 'POST', `/v1/keys/${key}/rotate`, rootToken);
            if (r.status !== 200) { refused++; continue; }
            const version = r.body.latest_version as number;
            rotations.push({ key, version });
            const plaintext = `ct-${round}-${i}-${randomBytes(4).toString('hex')}`;
            const e = await call(server.address, 'POST', `/v1/keys/${key}/encrypt`, rootToken, { plaintext: Buffer.from(plaintext).toString('base64') });
            if (e.status === 200) ciphertexts.push({ key, version: e.body.version as number, ciphertext: e.body.ciphertext as string, plaintext });
          } catch {
            // Server gone.
          }
        }
      };
      const before = writes.length;
      const loops = [...Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)), rotator()];
      await new Promise((r) => setTimeout(r, randomInt(100, 601)));
      killed = true;
      const status = await server.stop('SIGKILL');
      assert.equal(status, null, 'server exited before it was killed');
      assert.equal(server.process.signalCode, 'SIGKILL');
      await Promise.all(loops);
      const audit = fs.readFileSync(path.join(dataDir, 'audit.log'));
      if (audit.length > 0 && audit[audit.length - 1] !== 0x0a) tornTails++;
      assert.ok(writes.length > before, `round ${round}: no write was acknowledged`);
    }

    // Last restart: everything is there, then a clean stop and a final audit check.
    const server = await startDev(dataDir);
    rootToken = server.rootToken;
    await verifyAll(server, 'final restart');
    const entries = await verifyAudit('final (server idle)');
    assert.equal(await server.stop('SIGTERM'), 0, server.output());
    assert.equal(await verifyAudit('final (stopped)'), entries);
    assert.equal(refused, 0, `${refused} requests were refused with a non-2xx status`);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`# crash: ${writes.length} acknowledged secret writes, ${rotations.length} key versions and ${ciphertexts.length} ciphertexts verified after each of ${ROUNDS} SIGKILLs (${tornTails} torn audit tails repaired, ${entries} audit entries) in ${seconds} s`);
  });
});
