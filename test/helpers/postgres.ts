/**
 * A real PostgreSQL server for tests: Debian's binaries, a cluster made by initdb in a fresh temp
 * dir, listening on a free loopback port. As root, initdb and the server run as the `postgres`
 * user (PostgreSQL refuses to run as root); otherwise as the current user.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePorts, tail } from './processes.js';

export interface TestPostgres {
  /** Connection URL for the `keyhold` role and database, without the password. */
  url: string;
  /** The `keyhold` role's password, in a 0600 file (as a deployment would mount it). */
  passwordFile: string;
  password: string;
  port: number;
  dir: string;
  /** Runs SQL as the superuser (schema changes a test needs, e.g. to make an insert fail). */
  admin(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** A fresh empty database owned by `keyhold`; returns its URL (same password). */
  createDatabase(name: string): Promise<string>;
  /** Stops the server: `fast` (clean) or `immediate` (like a crash: no checkpoint). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  restart(mode?: 'fast' | 'immediate'): void;
  /** Stops the server and deletes its directory. */
  destroy(): void;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/setup.sh');
  return join(root, versions[0] as string, 'bin');
}

const asRoot = process.getuid?.() === 0;

function run(bin: string, args: string[]): void {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const res = spawnSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${res.status}): ${res.stderr}${res.stdout}`);
}

/** Starts a new PostgreSQL cluster; call destroy() when done (also done at process exit). */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = binDir();
  // Not under KEYHOLD_TEST_TMP: that dir is 0700 root, which the postgres user cannot enter.
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-pg-'));
  const data = join(dir, 'data');
  const superPwFile = join(dir, 'superuser.pw');
  const superPassword = randomBytes(18).toString('base64url');
  writeFileSync(superPwFile, superPassword + '\n', { mode: 0o600 });
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chownSync(superPwFile, uid, gid);
  }
  chmodSync(dir, 0o700);
  run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${superPwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync']);
  const [port] = await freePorts(1) as [number];
  const log = join(dir, 'server.log');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200`;
  let running = false;
  const start = () => {
    run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-o', opts, '-w', '-t', '60', 'start']);
    running = true;
  };
  const stop = (mode: 'fast' | 'immediate' = 'fast') => {
    if (!running) return;
    run(join(bin, 'pg_ctl'), ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    running = false;
  };
  try {
    start();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${tail(log)}`);
  }
  const onExit = () => { try { stop('immediate'); } catch { /* already gone */ } };
  process.on('exit', onExit);
  const adminUrl = `postgres://postgres:${encodeURIComponent(superPassword)}@127.0.0.1:${port}/postgres`;
  const admin = async (sql: string, params: unknown[] = [], database = 'postgres') => {
    const client = new pg.Client({ connectionString: adminUrl.replace(/\/postgres$/, `/${database}`) });
    await client.connect();
    try {
      return await client.query(sql, params);
    } finally {
      await client.end();
    }
  };
  const password = randomBytes(18).toString('base64url');
  await admin(`CREATE ROLE keyhold LOGIN PASSWORD '${password}'`);
  const createDatabase = async (name: string) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
    await admin(`CREATE DATABASE ${name} OWNER keyhold`);
    return `postgres://keyhold@127.0.0.1:${port}/${name}`;
  };
  const url = await createDatabase('keyhold');
  const passwordFile = join(dir, 'keyhold.pw');
  writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
  return {
    url,
    passwordFile,
    password,
    port,
    dir,
    admin: (sql, params) => admin(sql, params, 'keyhold'),
    createDatabase,
    stop,
    start,
    restart(mode = 'fast') {
      stop(mode);
      start();
    },
    destroy() {
      onExit();
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
