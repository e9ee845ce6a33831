/**
 * The running server's verification of the audit table (the console's audit page): the same
 * verifier as `keyhold audit verify --config`, on a connection of its own, within a time bound.
 *
 * A session of its own rather than a pooled one: it holds a transaction for as long as the check
 * runs, which would take a connection from the requests' pool, and ending it at the bound is
 * always safe (nothing else uses it). The bound is hard: at `timeoutMs` the connection is closed,
 * which fails the statement in flight and ends the transaction server-side; statement_timeout (the
 * same bound) also stops a statement the server runs, or a lock it waits for, by itself.
 */
import type { KeyObject } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import { storageError } from '../storage/postgres-errors.js';
import type { NewPgClient } from '../storage/pg-session.js';
import type { ChainAnchor } from './chain-check.js';
import { verifyAuditTable, type TableVerifyOptions, type TableVerifyResult } from './pg-verify.js';

/** How the session shows in pg_stat_activity. */
export const VERIFY_APPLICATION_NAME = 'keyhold-audit-verify';

export interface OnlineVerifyOptions extends TableVerifyOptions {
  anchor?: ChainAnchor & { chain: string };
  timeoutMs: number;
}

export async function verifyAuditTableWithin(newClient: NewPgClient, publicKey: KeyObject, options: OnlineVerifyOptions): Promise<TableVerifyResult> {
  const { anchor, head, timeoutMs } = options;
  const client = newClient({
    application_name: VERIFY_APPLICATION_NAME,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + 1000,
    connectionTimeoutMillis: Math.min(timeoutMs, 5000),
  });
  // A connection lost mid-check fails the query in flight; without a listener the event would crash the process.
  client.on('error', () => undefined);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    client.end().catch(() => undefined);
  }, timeoutMs);
  try {
    await client.connect();
    return await verifyAuditTable(client, publicKey, anchor, head ? { head } : {});
  } catch (err) {
    // 57014: statement_timeout (or a cancel) stopped a statement.
    if (timedOut || (err as { code?: unknown }).code === '57014') {
      throw new KeyholdError('ERR_AUDIT_VERIFY_TIMEOUT', `verifying the audit table took longer than ${timeoutMs / 1000} s (audit.verifyTimeoutSeconds) and was stopped; verify it offline with keyhold audit verify --config`, { cause: err });
    }
    throw storageError('audit verify', err);
  } finally {
    clearTimeout(timer);
    await client.end().catch(() => undefined);
  }
}
