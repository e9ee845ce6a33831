import { readFileSync } from 'node:fs';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { KeyholdError } from '../errors.js';
import type { PostgresOptions } from './postgres.js';

/** The `storage.postgres` section of the server config (schema in core/config.ts). */
export interface PostgresConfig {
  /** postgres://USER@HOST:PORT/DATABASE: no password, no query parameters. */
  url: string;
  passwordFile?: string;
  passwordEnv?: string;
  tls?: {
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    /** The name the server's certificate must carry, when it is not the URL's host. */
    serverName?: string;
    /** Verify the server's certificate chain and name (default true: verify-full). */
    rejectUnauthorized?: boolean;
  };
  pool?: { max?: number };
  statementTimeoutMs?: number;
}

function configError(message: string, cause?: unknown): KeyholdError {
  return new KeyholdError('ERR_CONFIG', `storage.postgres: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Splits the URL into the connection's parts. A password in it is refused: the URL sits in the
 * config file, environment and Helm values, which are shown, diffed and logged as plain settings;
 * the password belongs in a mounted file or a Secret-backed variable. Query parameters are refused
 * too: `sslmode=...` would look like it configured TLS, which is `tls:`'s job.
 */
export function parsePostgresUrl(url: string): { host: string; port: number; user: string; database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    // Not echoed: a malformed URL may still hold a password.
    throw configError('url is not a valid URL (postgres://USER@HOST:PORT/DATABASE)', cause);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw configError('url must start with postgres:// or postgresql://');
  if (u.password !== '') throw configError('url must not contain a password: set passwordFile or passwordEnv');
  if (u.search !== '' || u.hash !== '') throw configError('url must not have query parameters; TLS is set under storage.postgres.tls');
  const user = decodeURIComponent(u.username);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  // A percent-encoded path as the host is a Unix socket directory, as libpq reads it.
  const host = decodeURIComponent(u.hostname).replace(/^\[|\]$/g, '');
  if (user === '' || database === '' || host === '' || database.includes('/')) throw configError('url must be postgres://USER@HOST[:PORT]/DATABASE');
  return { host, port: u.port === '' ? 5432 : Number(u.port), user, database };
}

function readSecretFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (cause) {
    throw configError(`cannot read ${what} ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, cause);
  }
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw configError(`cannot read ${what} ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, cause);
  }
}

/** The TLS options for node:tls; the default verifies chain and host name (libpq's verify-full). */
export function postgresTls(tls: NonNullable<PostgresConfig['tls']>): ConnectionOptions {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) throw configError('tls.certFile and tls.keyFile go together');
  const serverName = tls.serverName;
  return {
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
    ...(tls.caFile !== undefined ? { ca: readPem(tls.caFile, 'tls.caFile') } : {}),
    ...(tls.certFile !== undefined ? { cert: readPem(tls.certFile, 'tls.certFile') } : {}),
    ...(tls.keyFile !== undefined ? { key: readPem(tls.keyFile, 'tls.keyFile') } : {}),
    // pg sets SNI to the URL's host and node:tls checks the certificate against it; a configured
    // name replaces that check (e.g. connecting by IP to a server whose certificate names a host).
    ...(serverName !== undefined ? { servername: serverName, checkServerIdentity: (_host: string, cert) => checkServerIdentity(serverName, cert) } : {}),
  };
}

/**
 * The connection options of a config: the password read from its file or variable now (never
 * kept in the config, never in argv), the TLS files read now, so a missing file stops start-up.
 */
export function postgresOptions(config: PostgresConfig, env: NodeJS.ProcessEnv = process.env): PostgresOptions {
  const target = parsePostgresUrl(config.url);
  if (config.passwordFile !== undefined && config.passwordEnv !== undefined) throw configError('set passwordFile or passwordEnv, not both');
  let password: string | undefined;
  if (config.passwordFile !== undefined) password = readSecretFile(config.passwordFile, 'passwordFile');
  if (config.passwordEnv !== undefined) {
    password = env[config.passwordEnv];
    if (password === undefined || password === '') throw configError(`passwordEnv names ${config.passwordEnv}, which is not set`);
  }
  return {
    ...target,
    ...(password !== undefined ? { password } : {}),
    ...(config.tls !== undefined ? { ssl: postgresTls(config.tls) } : {}),
    ...(config.pool?.max !== undefined ? { poolMax: config.pool.max } : {}),
    ...(config.statementTimeoutMs !== undefined ? { statementTimeoutMs: config.statementTimeoutMs } : {}),
  };
}
