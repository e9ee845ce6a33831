/**
 * What the server needs of an audit log, whichever sink holds it: the file (FileAuditLog) or the
 * PostgreSQL table (PostgresAuditLog), where a request's record commits with its writes.
 */
import type { StoredCheckpoint } from './checkpoint.js';
import type { AuditHead, AuditRecord } from './entry.js';
import type { AuditLogStatus } from './file-log.js';

/**
 * The audit state of one request on a log that records requests with their writes: its request
 * record, until a transaction that carries it commits.
 */
export interface RequestAuditScope {
  request: AuditRecord;
  recorded: boolean;
}

export interface AuditLog {
  readonly healthy: boolean;
  readonly status: AuditLogStatus;
  readonly flushes: number;
  readonly head: AuditHead;
  readonly lastCheckpoint: StoredCheckpoint | undefined;
  /**
   * Appends a record; resolves once it is durable. With `scope` (a log with `recordsWithWrites`):
   * the scope's request record first, if no write of the request has carried it yet.
   */
  append(record: AuditRecord, scope?: RequestAuditScope): Promise<void>;
  checkpoint(rotate?: boolean): Promise<StoredCheckpoint | undefined>;
  close(): Promise<void>;
  /**
   * Present on a log whose request records commit in the same transaction as the request's
   * writes: runs `fn` (the handler) so that every storage write it issues carries the scope.
   */
  readonly recordsWithWrites?: { run<T>(scope: RequestAuditScope, fn: () => T): T };
}
