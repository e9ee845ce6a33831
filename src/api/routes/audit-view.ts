/**
 * The audit log as the console's audit page sees it: the latest entries, and the verdict of the
 * same verifier `keyhold audit verify` runs (hash chain, canonical form, every checkpoint's HSM
 * signature, anchored on the barrier's copy of the latest checkpoint so a cut tail shows). Both
 * read the files on demand and need `read` on sys/audit; the verifier is loaded on first use.
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { StoredCheckpoint } from '../../audit/checkpoint.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { KeyholdError } from '../../errors.js';
import { AuditEntries, AuditVerification } from '../../wire/console.js';
import { route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';

export interface AuditViewOptions {
  /** The active audit file; undefined when the log is a PostgreSQL table (not shown here yet). */
  path: string | undefined;
  publicKeyPem: string;
  /** The barrier's copy of the latest checkpoint, and the chain id, read at each request. */
  audit: { readonly lastCheckpoint: StoredCheckpoint | undefined; readonly status: { chain?: string } };
}

/** How much of the active file's tail the entries view reads at most. */
const TAIL_BYTES = 512 * 1024;
const EntriesQuery = Closed({ limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: 'at most 500 (default 100)' })) });

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

export const auditViewApi: ApiPlugin<AuditViewOptions> = async (app, { path, publicKeyPem, audit }) => {
  const requireFile = (): string => {
    if (path === undefined) throw new KeyholdError('ERR_NOT_SUPPORTED', 'the audit log is a PostgreSQL table: use keyhold audit verify --config');
    return path;
  };

  route(app, {
    method: 'GET', url: '/v1/sys/audit/entries', operation: 'audit.entries',
    schema: { tags: ['sys'], summary: 'The latest audit entries of the active file, oldest first', querystring: EntriesQuery, response: withErrors({ 200: AuditEntries }) },
    authorize: () => [[policyPath(MOUNTS.audit), 'read']],
    handler: async (req) => {
      const limit = Math.min(500, Number(req.query.limit ?? 100));
      const entries: AuditEntries['entries'] = [];
      let unreadable = 0;
      for (const line of await tailLines(requireFile(), limit)) {
        try {
          const entry = JSON.parse(line) as unknown;
          if (entry && typeof entry === 'object' && typeof (entry as { seq?: unknown }).seq === 'number') entries.push(entry as AuditEntries['entries'][number]);
          else unreadable++;
        } catch {
          unreadable++;
        }
      }
      return { entries, unreadable };
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/audit/verify', operation: 'audit.verify',
    schema: { tags: ['sys'], summary: 'Verify the audit files now: hash chain, checkpoints\' HSM signatures, anchored on the latest checkpoint', response: withErrors({ 200: AuditVerification }) },
    authorize: () => [[policyPath(MOUNTS.audit), 'read']],
    handler: async () => {
      const active = requireFile();
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
    },
  });
};
