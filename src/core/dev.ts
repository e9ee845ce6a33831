import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { provisionSoftHsmToken } from '../hsm/softhsm.js';
import { applyEnvOverrides, validateConfig, type RawConfig, type ServerConfig } from './config.js';

export const DEV_TOKEN_LABEL = 'keyhold-dev';

export interface DevSetup {
  config: ServerConfig;
  rootTokenFile: string;
  dataDir: string;
}

/**
 * The KEYHOLD_* overrides `keyhold dev` honours: where the audit log goes (e.g. a separate,
 * small file system), the flood limit and the token lifetime limit (to try short limits), and a
 * PostgreSQL database instead of the folder's SQLite file (to try keyhold on PostgreSQL). The
 * others would point it away from its own folder.
 */
const DEV_ENV_OVERRIDES = [
  'KEYHOLD_AUDIT_PATH', 'KEYHOLD_UNAUTHENTICATED_RATE_LIMIT', 'KEYHOLD_TOKENS_MAX_TTL_SECONDS',
  'KEYHOLD_STORAGE_POSTGRES_URL', 'KEYHOLD_STORAGE_POSTGRES_PASSWORD_FILE',
  'KEYHOLD_OPERATORS_TOKEN_TTL_SECONDS', 'KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT', 'KEYHOLD_OPERATORS_ADDRESS_LOCKOUT',
  // Quorum approval: a short request lifetime, to try expiry; small limits and a short retention, to try them.
  'KEYHOLD_APPROVALS_TTL_SECONDS', 'KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER', 'KEYHOLD_APPROVALS_MAX_OPEN',
  'KEYHOLD_APPROVALS_RETENTION_SECONDS', 'KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS',
  // To try keyhold behind a local reverse proxy.
  'KEYHOLD_TRUSTED_PROXIES',
] as const;

/**
 * `keyhold dev`: everything embedded under one folder — a SoftHSM token (DIR/softhsm2.conf,
 * PIN in DIR/hsm-pin), SQLite (DIR/keyhold.db), the audit log (DIR/audit.log unless
 * KEYHOLD_AUDIT_PATH says otherwise) and the root token. Reusing the folder keeps every key and secret.
 */
export function prepareDev(dataDir: string, listen: string, env: NodeJS.ProcessEnv = process.env): DevSetup {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = provisionSoftHsmToken(dir, DEV_TOKEN_LABEL);
  const raw: RawConfig = {
    listen,
    storage: { sqlite: { path: join(dir, 'keyhold.db') } },
    hsm: { module: token.module, tokenLabel: DEV_TOKEN_LABEL, pinFile: token.pinFile },
    audit: { path: join(dir, 'audit.log') },
  };
  applyEnvOverrides(raw, env, DEV_ENV_OVERRIDES);
  // On PostgreSQL the audit log is the database's table (unless KEYHOLD_AUDIT_PATH asked for a file, which is then refused).
  if ((raw.storage as { postgres?: unknown }).postgres !== undefined && env.KEYHOLD_AUDIT_PATH === undefined) delete (raw.audit as Record<string, unknown>).path;
  const config = validateConfig(raw, 'keyhold dev');
  if (config.audit.path !== undefined) config.audit.path = resolve(config.audit.path);
  return { config, rootTokenFile: join(dir, 'root-token'), dataDir: dir };
}

export function readRootToken(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}
