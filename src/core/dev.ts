import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { provisionSoftHsmToken } from '../hsm/softhsm.js';
import { TOKENS_MAX_TTL_OVERRIDE, validateConfig, type RawConfig, type ServerConfig } from './config.js';

export const DEV_TOKEN_LABEL = 'keyhold-dev';

export interface DevSetup {
  config: ServerConfig;
  rootTokenFile: string;
  dataDir: string;
}

/**
 * `keyhold dev`: everything embedded under one folder — a SoftHSM token (DIR/softhsm2.conf,
 * PIN in DIR/hsm-pin), SQLite (DIR/keyhold.db), the audit log and the root token. Reusing the
 * folder keeps every key and secret.
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
  // The token lifetime limit is the one setting a dev server takes from the environment (to try short limits).
  const [name, apply] = TOKENS_MAX_TTL_OVERRIDE;
  if (env[name]) apply(raw, env[name]);
  const config = validateConfig(raw, 'keyhold dev');
  return { config, rootTokenFile: join(dir, 'root-token'), dataDir: dir };
}

export function readRootToken(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}
