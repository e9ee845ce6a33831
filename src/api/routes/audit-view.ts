/**
 * The audit log as the console's audit page sees it: the latest entries, and the verdict of the
 * same verifier `keyhold audit verify` runs (hash chain, canonical form, every checkpoint's HSM
 * signature, anchored on what this process knows of its own chain so a cut tail shows). Both read
 * the log on demand and need `read` on sys/audit; the verifier is loaded on first use.
 *
 * The log is the audit file (SQLite), or on PostgreSQL the `audit` table that every replica writes
 * its own chain into (../audit-table-view.ts). A verification reads the whole log, so a process
 * runs one at a time: a request that comes while one runs waits for it and gets its verdict, so a
 * console user refreshing (or many) costs the database one check, not one each.
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { StoredCheckpoint } from '../../audit/checkpoint.js';
import { entryShapeProblem, type AuditHead } from '../../audit/entry.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { KeyholdError } from '../../errors.js';
import { AuditEntries, AuditVerification } from '../../wire/console.js';
import type { AuditTable } from '../audit-table-view.js';
import { route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';

export interface AuditViewOptions {
  /** The active audit file; undefined when the log is a PostgreSQL table. */
  path: string | undefined;
  /** When the log is the PostgreSQL table: how to read it. */
  table?: AuditTable;
  publicKeyPem: string;
  /** This process's chain: its id, latest checkpoint (the barrier's copy, with a file) and committed head, read at each request. */
  audit: { readonly lastCheckpoint: StoredCheckpoint | undefined; readonly status: { chain?: string }; readonly head: AuditHead };
}

/** How much of the active file's tail the entries view reads at most. */
const TAIL_BYTES = 512 * 1024;
const EntriesQuery = Closed({ limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]?|[1-4][0-9]{2}|500)$', description: '1 to 500 (default 100)' })) });

/** The last `limit` lines of `path` (within its last TAIL_BYTES), newest last. */
async function tailLines(path: string, limit: number): Promise<string[]> {
  const handle = await open(path, 'r').catch((err: unknown) => {
    throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'cannot open the audit file', { cause: err });
  });
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    const lines = buffer.toString('utf8').split('\n').filter((l) => l !== '');
    // A read from the middle of the file starts mid-line: drop that first partial line.
    if (start > 0) lines.shift();
    return lines.slice(-limit);
  } finally {
    await handle.close();
  }
}

async function fileEntries(path: string, limit: number): Promise<AuditEntries> {
  const entries: AuditEntries['entries'] = [];
  let unreadable = 0;
  for (const line of await tailLines(path, limit)) {
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = undefined;
    }
    // Only an entry's shape is served (the response schema would refuse another); a tampered value still shows.
    if (entry !== undefined && entryShapeProblem(entry, true) === undefined) entries.push(entry as AuditEntries['entries'][number]);
    else unreadable++;
  }
  return { entries, unreadable };
}

async function fileVerification(active: string, publicKeyPem: string, audit: AuditViewOptions['audit']): Promise<AuditVerification> {
  const [{ auditFileSet, scanAuditFiles }, { publicKeyFromPem }] = await Promise.all([import('../../audit/verify.js'), import('../../audit/checkpoint.js')]);
  // The anchor first, then the files: the checkpoint it names is durable in them by then.
  const anchor = audit.lastCheckpoint;
  const chain = audit.status.chain;
  // The active file may be mid-append: its torn last line is the writer's, not tampering.
  const { result } = await scanAuditFiles(auditFileSet(active), { publicKey: publicKeyFromPem(publicKeyPem), ...(chain ? { chain } : {}), ...(anchor ? { anchor } : {}) }, active);
  const checkedAt = new Date().toISOString();
  if (!result.ok) {
    return {
      ok: false, checked_at: checkedAt, entries: result.entries, anchored: anchor !== undefined,
      failure: { bad_seq: result.badSeq, line: result.line, reason: result.reason, ...(result.file ? { file: basename(result.file) } : {}), ...(result.truncated ? { truncated: true } : {}) },
    };
  }
  return {
    ok: true, checked_at: checkedAt, entries: result.entries, anchored: anchor !== undefined,
    ...(result.checkpoints !== undefined ? { checkpoints: result.checkpoints } : {}),
    ...(result.unsignedEntries !== undefined ? { unsigned_entries: result.unsignedEntries } : {}),
    ...(result.lastCheckpoint ? { last_checkpoint: { seq: result.lastCheckpoint.seq, head_seq: result.lastCheckpoint.headSeq, signed_at: result.lastCheckpoint.signedAt } } : {}),
  };
}

export const auditViewApi: ApiPlugin<AuditViewOptions> = async (app, { path, table, publicKeyPem, audit }) => {
  const unsupported = () => new KeyholdError('ERR_NOT_SUPPORTED', 'this server\'s audit log is neither a file nor the PostgreSQL table');
  const tableView = () => import('../audit-table-view.js');

  const verifyNow = async (): Promise<AuditVerification> => {
    if (table) {
      // Read before the table is: everything they name is committed by then.
      const own = { chain: audit.status.chain, lastCheckpoint: audit.lastCheckpoint, head: audit.head };
      return (await tableView()).tableVerification(table, publicKeyPem, own);
    }
    if (path !== undefined) return fileVerification(path, publicKeyPem, audit);
    throw unsupported();
  };
  let running: Promise<AuditVerification> | undefined;
  const verifyOnce = () => (running ??= verifyNow().finally(() => { running = undefined; }));

  route(app, {
    method: 'GET', url: '/v1/sys/audit/entries', operation: 'audit.entries',
    schema: {
      tags: ['sys'], summary: 'The latest audit entries (of the active file, or of every chain of the PostgreSQL table), oldest first',
      querystring: EntriesQuery, response: withErrors({ 200: AuditEntries }),
    },
    authorize: () => [[policyPath(MOUNTS.audit), 'read']],
    handler: async (req) => {
      const limit = Number(req.query.limit ?? 100);
      if (table) return (await tableView()).tableEntries(table, limit);
      if (path !== undefined) return fileEntries(path, limit);
      throw unsupported();
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/audit/verify', operation: 'audit.verify',
    schema: {
      tags: ['sys'], summary: 'Verify the audit log now (the files, or every chain of the PostgreSQL table): hash chain, checkpoints\' HSM signatures, anchored on this process\'s own chain',
      querystring: Closed({}), response: withErrors({ 200: AuditVerification }),
    },
    authorize: () => [[policyPath(MOUNTS.audit), 'read']],
    handler: () => verifyOnce(),
  });
};
