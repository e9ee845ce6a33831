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
  /** With `{ tls: true }`: the CA that issued the server's certificate (for localhost and 127.0.0.1). */
  caFile?: string;
}

export interface StartPostgresOptions {
  /** ssl=on, with a certificate for localhost and 127.0.0.1 from a fresh test CA. */
  tls?: boolean;
}

function openssl(args: string[]): void {
  const res = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${res.stderr}`);
}

/** A fresh self-signed test CA in `dir`: returns the paths of its certificate and key. */
export function makeTestCa(dir: string, name: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', certFile]);
  return { certFile, keyFile };
}

/** A server certificate for `sans` (e.g. DNS:localhost,IP:127.0.0.1) issued by `ca`. */
export function issueTestCert(ca: { certFile: string; keyFile: string }, dir: string, name: string, sans: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile]);
  return { certFile, keyFile };
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
export async function startPostgres(options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const bin = binDir();
  // Not under KEYHOLD_TEST_TMP: that dir is 0700 root, which the postgres user cannot enter.
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-pg-'));
  const data = join(dir, 'data');
  const superPwFile = join(dir, 'superuser.pw');
  const superPassword = randomBytes(18).toString('base64url');
  writeFileSync(superPwFile, superPassword + '\n', { mode: 0o600 });
  let tlsOpts = '';
  let caFile: string | undefined;
  if (options.tls) {
    const ca = makeTestCa(dir, 'test-ca');
    const cert = issueTestCert(ca, dir, 'server', 'DNS:localhost,IP:127.0.0.1');
    caFile = ca.certFile;
    chmodSync(cert.keyFile, 0o600);
    tlsOpts = ` -c ssl=on -c ssl_cert_file=${cert.certFile} -c ssl_key_file=${cert.keyFile}`;
  }
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chownSync(superPwFile, uid, gid);
    // The server reads its TLS key, which must be its own and 0600.
    for (const f of readdirSync(dir)) chownSync(join(dir, f), uid, gid);
  }
  chmodSync(dir, 0o700);
  run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${superPwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync']);
  const [port] = await freePorts(1) as [number];
  const log = join(dir, 'server.log');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200${tlsOpts}`;
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
    ...(caFile !== undefined ? { caFile } : {}),
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
