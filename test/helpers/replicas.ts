/** Helpers for the replica tests: several keyhold servers on one PostgreSQL and one SoftHSM token. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { startPostgres, type TestPostgres } from './postgres.js';
import { pollUntil } from './wait.js';
import { exited, killOnExit } from './processes.js';
import { call, CLI, startServer, tempDir, type DevServer } from './server.js';
import { makeSoftHsmToken, type SoftHsmTestToken } from './softhsm.js';

/**
 * pollUntil (wait.ts) for checks made while a replica or the database may be restarting: a check
 * that fails counts as "not yet".
 */
export async function pollUntilUp(what: string, timeoutMs: number, check: () => Promise<boolean>, intervalMs = 50): Promise<void> {
  await pollUntil(what, () => check().catch(() => false), { timeoutMs, intervalMs });
}

export interface Replica extends DevServer {
  index: number;
}

export interface ReplicaSet {
  pg: TestPostgres;
  token: SoftHsmTestToken;
  dir: string;
  configFile: string;
  rootToken: string;
  replicas: Replica[];
  /** (Re)starts replica `index` on the shared config; replaces it in `replicas`. */
  start(index: number): Promise<Replica>;
  /** The replica that says it leads (health), if exactly one does. */
  leader(): Promise<Replica | undefined>;
  /** Stops every replica and PostgreSQL. */
  destroy(): Promise<void>;
}

/**
 * N `keyhold server` processes on one config: one PostgreSQL database, one SoftHSM token (its
 * file store is shared between processes); each process writes its own audit chain in the
 * database's audit table (chains are per writer).
 * The store is initialised once by `keyhold init`.
 */
export async function startReplicas(count: number, extraConfig: Record<string, unknown> = {}): Promise<ReplicaSet> {
  const token = makeSoftHsmToken('keyhold-ha');
  const pg = await startPostgres();
  const dir = tempDir('keyhold-ha-');
  const configFile = join(dir, 'keyhold.yaml');
  writeFileSync(configFile, stringifyYaml({
    listen: '127.0.0.1:0',
    storage: { postgres: { url: pg.url, passwordFile: pg.passwordFile } },
    hsm: token.config,
    audit: {},
    ...extraConfig,
  }));
  const env = { SOFTHSM2_CONF: token.confPath };
  const init = spawnSync(process.execPath, [CLI, 'init', '--config', configFile, '--root-token-file', join(dir, 'root-token')], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`keyhold init failed (${init.status}): ${init.stderr}`);
  const set: ReplicaSet = {
    pg, token, dir, configFile,
    rootToken: readFileSync(join(dir, 'root-token'), 'utf8').trim(),
    replicas: [],
    async start(index) {
      // Each process writes its own audit chain into the shared audit table.
      const server = await startServer(configFile, env, dir);
      killOnExit(server.process);
      const replica = Object.assign(server, { index });
      set.replicas[index] = replica;
      return replica;
    },
    async leader() {
      const leading: Replica[] = [];
      for (const r of set.replicas) {
        if (exited(r.process)) continue;
        const health = await call(r.address, 'GET', '/v1/sys/health').catch(() => undefined);
        if (health?.body?.replica?.leader === true) leading.push(r);
      }
      return leading.length === 1 ? leading[0] : undefined;
    },
    async destroy() {
      await Promise.all(set.replicas.map((r) => r.stop('SIGKILL')));
      pg.destroy();
    },
  };
  for (let i = 0; i < count; i++) await set.start(i);
  return set;
}
