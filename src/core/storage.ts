import { existsSync } from 'node:fs';
import { KeyholdError } from '../errors.js';
import { postgresOptions } from '../storage/postgres-config.js';
import { SqliteStorage } from '../storage/sqlite.js';
import type { Storage } from '../storage/types.js';
import type { ServerConfig } from './config.js';

/** Where the store is, for messages (never the password: the URL cannot hold one). */
export function storageName(config: ServerConfig['storage']): string {
  return config.postgres ? `postgres ${config.postgres.url}` : `store ${config.sqlite?.path ?? '?'}`;
}

/**
 * Refuses a SQLite file that does not exist, before anything is opened, so a mistyped path leaves
 * no stray database behind. A PostgreSQL database is the operator's to create: it is always there.
 */
export function requireExistingStore(config: ServerConfig['storage']): void {
  const file = config.sqlite?.path;
  if (file !== undefined && !existsSync(file)) {
    throw new KeyholdError('ERR_NOT_INITIALIZED', `store ${file} does not exist: not initialised; run "keyhold init --config FILE --root-token-file FILE" first`);
  }
}

/** Opens the configured store; on PostgreSQL this creates or upgrades keyhold's tables (only). */
export async function openStorage(config: ServerConfig['storage'], options: { warn?: (message: string) => void } = {}): Promise<Storage> {
  if (config.postgres) {
    // Loaded only for PostgreSQL: the `pg` client costs a SQLite server about 15 MB of idle RSS.
    const { PostgresStorage } = await import('../storage/postgres.js');
    return PostgresStorage.open({ ...postgresOptions(config.postgres), ...(options.warn ? { warn: options.warn } : {}) });
  }
  if (config.sqlite === undefined) throw new KeyholdError('ERR_CONFIG', 'no storage configured');
  return SqliteStorage.open(config.sqlite.path);
}
