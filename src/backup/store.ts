import type { ServerConfig } from '../core/config.js';
import { openStorage, requireExistingStore } from '../core/storage.js';
import type { Storage } from '../storage/types.js';

/**
 * The store a config names (SQLite or PostgreSQL), opened directly (no server, no HSM): the source
 * of a backup or the target of a restore. Backup and restore only see the Storage interface, so
 * either store can be restored into the other.
 */
export async function openConfiguredStore(storage: ServerConfig['storage'], purpose: 'backup' | 'restore'): Promise<Storage> {
  // A backup never creates a store: a mistyped SQLite path must not leave an empty database behind.
  if (purpose === 'backup') requireExistingStore(storage);
  return openStorage(storage);
}
