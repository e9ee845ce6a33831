import { existsSync } from 'node:fs';
import type { ServerConfig } from '../core/config.js';
import { KeyholdError } from '../errors.js';
import { SqliteStorage } from '../storage/sqlite.js';
import type { Storage } from '../storage/types.js';

/**
 * The store a config names, opened directly (no server, no HSM): the source of a backup or the
 * target of a restore. Another storage backend is one more branch here; backup and restore only
 * see the Storage interface.
 */
export function openConfiguredStore(storage: ServerConfig['storage'], purpose: 'backup' | 'restore'): Storage {
  const file = storage.sqlite.path;
  // A backup never creates a store: a mistyped path must not leave an empty database behind.
  if (purpose === 'backup' && !existsSync(file)) throw new KeyholdError('ERR_NOT_INITIALIZED', `store ${file} does not exist`);
  return SqliteStorage.open(file);
}
