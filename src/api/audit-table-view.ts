/**
 * The console's audit views over the PostgreSQL audit table (routes/audit-view.ts serves them):
 * the latest entries of every chain, and every chain's verdict in the wire shapes of the file's.
 * Loaded on first use, and only on PostgreSQL (it loads `pg` through the verifier).
 */
import type pg from 'pg';
import type { StoredCheckpoint } from '../audit/checkpoint.js';
import type { AuditHead } from '../audit/entry.js';
import { recentAuditEntries } from '../audit/pg-recent.js';
import { verifyAuditTableWithin } from '../audit/pg-verify-online.js';
import { publicKeyFromPem } from '../audit/checkpoint.js';
import type { NewPgClient } from '../storage/pg-session.js';
import { storageError } from '../storage/postgres-errors.js';
import type { AuditChainVerdict, AuditEntries, AuditVerification } from '../wire/console.js';

export interface AuditTable {
  /** The store's pool: the entries view is a few short reads. */
  pool: Pick<pg.Pool, 'query'>;
  /** A session of its own for each verification (it holds a transaction for as long as it runs). */
  newClient: NewPgClient;
  /** audit.verifyTimeoutSeconds (default DEFAULT_VERIFY_TIMEOUT_SECONDS). */
  verifyTimeoutSeconds?: number;
}

/**
 * The default bound of one verification. Measured here at about 80 µs an entry (a loaded 2-core
 * machine), so about 250,000 entries; a larger table is checked offline (`keyhold audit verify
 * --config`, no bound) rather than holding a request, a session and the event loop's time longer.
 */
export const DEFAULT_VERIFY_TIMEOUT_SECONDS = 20;

export async function tableEntries(table: AuditTable, limit: number): Promise<AuditEntries> {
  try {
    const { entries, unreadable, chains } = await recentAuditEntries(table.pool, limit);
    return { entries: entries as AuditEntries['entries'], unreadable, chains };
  } catch (err) {
    throw storageError('audit entries', err);
  }
}

/** What this process knows of its own chain, read before the table is: all of it is committed by then. */
export interface OwnChain {
  chain: string | undefined;
  lastCheckpoint: StoredCheckpoint | undefined;
  head: AuditHead;
}

export async function tableVerification(table: AuditTable, publicKeyPem: string, own: OwnChain): Promise<AuditVerification> {
  const { chain, lastCheckpoint: anchor, head } = own;
  const checkedAt = new Date().toISOString();
  const result = await verifyAuditTableWithin(table.newClient, publicKeyFromPem(publicKeyPem), {
    timeoutMs: Math.round((table.verifyTimeoutSeconds ?? DEFAULT_VERIFY_TIMEOUT_SECONDS) * 1000),
    ...(anchor ? { anchor } : {}),
    ...(chain !== undefined ? { head: { chain, ...head } } : {}),
  });
  const anchored = (c: string) => c === chain && (anchor !== undefined || head.seq > 0);
  const chains: AuditChainVerdict[] = result.chains.map((c) => ({
    chain: c.chain, ok: c.ok, entries: c.entries, checkpoints: c.checkpoints, this_replica: c.chain === chain, anchored: anchored(c.chain),
    ...(c.ok
      ? { unsigned_entries: c.unsignedEntries, ...(c.lastCheckpoint ? { last_checkpoint: { seq: c.lastCheckpoint.seq, head_seq: c.lastCheckpoint.headSeq, signed_at: c.lastCheckpoint.signedAt } } : {}) }
      : { failure: { bad_seq: c.badSeq, reason: c.reason, ...(c.truncated ? { truncated: true } : {}) } }),
  }));
  if (result.missingChain !== undefined) {
    // Every row of this process's chain is gone (or, for a chain it wrote nothing to yet, never came).
    chains.push({
      chain: result.missingChain, ok: false, entries: 0, checkpoints: 0, this_replica: result.missingChain === chain, anchored: true,
      failure: { bad_seq: 1, reason: 'this replica\'s chain is not in the audit table: its rows were removed', truncated: true },
    });
  }
  const broken = chains.find((c) => !c.ok);
  return {
    ok: result.ok,
    checked_at: checkedAt,
    entries: chains.reduce((n, c) => n + c.entries, 0),
    checkpoints: chains.reduce((n, c) => n + c.checkpoints, 0),
    anchored: chain !== undefined && anchored(chain),
    ...(broken?.failure ? { failure: { bad_seq: broken.failure.bad_seq, line: broken.failure.bad_seq, reason: broken.failure.reason, chain: broken.chain, ...(broken.failure.truncated ? { truncated: true } : {}) } } : {}),
    chains,
  };
}
