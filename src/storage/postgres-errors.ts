import pg from 'pg';
import { KeyholdError } from '../errors.js';

/**
 * SQLSTATEs after which the same transaction, run again, can succeed: PostgreSQL aborted it to keep
 * SERIALIZABLE (40001) or to break a deadlock (40P01). Nothing of it was committed.
 */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * SQLSTATEs that say "the database is not there right now", not "this request is wrong": the
 * server shutting down or starting up (57P01-57P03), out of connections (53300), a statement
 * timeout or cancel (57014), a read-only standby after a failover (25006), connection
 * exceptions (class 08). The client should retry; the pool reconnects by itself.
 */
const UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '53300', '57014', '25006']);

export function isRetryable(err: unknown): boolean {
  return err instanceof pg.DatabaseError && err.code !== undefined && RETRYABLE.has(err.code);
}

/**
 * True when the failure is the database's or the network's, not the statement's. Errors that are
 * not a DatabaseError (a refused or reset connection, a TLS failure, "Connection terminated", a
 * pool connect timeout) never got an answer from PostgreSQL: they are unavailability too.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof KeyholdError) return err.code === 'ERR_STORAGE_UNAVAILABLE';
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return UNAVAILABLE.has(code) || RETRYABLE.has(code) || code.startsWith('08');
}

/** The one KeyholdError for a failed storage operation: unavailable (retry later) or a storage fault. */
export function storageError(op: string, err: unknown): KeyholdError {
  if (err instanceof KeyholdError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code = err instanceof pg.DatabaseError && err.code ? ` (${err.code})` : '';
  return new KeyholdError(isUnavailable(err) ? 'ERR_STORAGE_UNAVAILABLE' : 'ERR_STORAGE', `postgres ${op} failed${code}: ${msg}`, { cause: err });
}
