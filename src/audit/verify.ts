/**
 * Reading audit files for verification, and the scan FileAuditLog.open uses to resume the chain.
 * Reports the first line that breaks the rules of chain-check.ts (named by file, line and seq),
 * so the exact entry that was altered, removed or reordered is named.
 */
import { existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { KeyholdError } from '../errors.js';
import { ChainVerifier, type ChainCheckOptions } from './chain-check.js';
import { type AuditHead } from './entry.js';
import { rotatedFiles, type AuditFileRef } from './files.js';

export type AuditVerifyResult =
  | {
    ok: true; entries: number; lastHash: string;
    /** With a public key: the checkpoints checked, the last one, and entries after its head (chained, unsigned). */
    checkpoints?: number; lastCheckpoint?: { seq: number; headSeq: number; signedAt: string }; unsignedEntries?: number;
    files?: string[];
  }
  /** badSeq is the seq expected at the failing line; line is 1-based within `file`; entries counts the good ones before it. */
  | { ok: false; entries: number; badSeq: number; line: number; reason: string; file?: string; truncated?: boolean };

export interface AuditScan {
  /** Byte length of the valid prefix (through the last good line, newline included if present). */
  validBytes: number;
  /** Lines checked in this file. */
  lines: number;
  /** A final line without newline: `complete` if it is nevertheless a valid, chain-correct entry. */
  torn?: { bytes: number; complete: boolean };
  /** Why the file is bad (not set for a torn tail alone). */
  failure?: { line: number; reason: string };
}

const CHUNK = 64 * 1024;

interface RawLine {
  bytes: Buffer;
  complete: boolean;
}

async function* readLines(handle: FileHandle): AsyncGenerator<RawLine> {
  const chunk = Buffer.alloc(CHUNK);
  let position = 0;
  let carry = Buffer.alloc(0);
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, CHUNK, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const data = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
    let from = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, from)) {
      yield { bytes: data.subarray(from, nl), complete: true };
      from = nl + 1;
    }
    carry = Buffer.from(data.subarray(from));
  }
  if (carry.length > 0) yield { bytes: carry, complete: false };
}

/** Feeds one open file to the verifier, stopping at the first bad line. */
export async function scanAuditHandle(handle: FileHandle, verifier: ChainVerifier): Promise<AuditScan> {
  let validBytes = 0;
  let lines = 0;
  for await (const { bytes, complete } of readLines(handle)) {
    const problem = verifier.check(bytes);
    if (!complete) {
      // Without its newline the line was never acknowledged, unless it is a whole valid entry
      // whose newline alone was lost: that one is kept.
      if (problem === undefined) return { validBytes: validBytes + bytes.length, lines: lines + 1, torn: { bytes: bytes.length, complete: true } };
      return { validBytes, lines, torn: { bytes: bytes.length, complete: false } };
    }
    if (problem !== undefined) return { validBytes, lines, failure: { line: lines + 1, reason: problem } };
    lines += 1;
    validBytes += bytes.length + 1;
  }
  return { validBytes, lines };
}

/** The rotated siblings of `activePath` and the active file itself (if it exists), in chain order. */
export function auditFileSet(activePath: string): AuditFileRef[] {
  return [...rotatedFiles(activePath), ...(existsSync(activePath) ? [{ path: activePath }] : [])];
}

export interface SetScan {
  result: AuditVerifyResult;
  verifier: ChainVerifier;
  /** The scan of the last file read (the active one when it exists). */
  last?: AuditScan & { path: string };
}

/**
 * Verifies files in order as one chain. A torn final line is a failure unless it is in the last
 * file and that is `tornTailAllowedIn` (the server repairs the active file's tail); a complete
 * entry missing only its newline is accepted.
 */
export async function scanAuditFiles(files: AuditFileRef[], options: ChainCheckOptions = {}, tornTailAllowedIn?: string): Promise<SetScan> {
  const verifier = new ChainVerifier(options);
  let last: (AuditScan & { path: string }) | undefined;
  const fail = (file: string | undefined, line: number, reason: string, truncated = false): SetScan => ({
    result: { ok: false, entries: verifier.entries, badSeq: verifier.entries + 1, line, reason, ...(file ? { file } : {}), ...(truncated ? { truncated } : {}) },
    verifier,
    last,
  });
  for (const [i, ref] of files.entries()) {
    if (ref.firstSeq !== undefined && ref.firstSeq !== verifier.entries + 1) {
      return fail(ref.path, 1, `file starts at seq ${ref.firstSeq} but the chain so far ends at seq ${verifier.entries}: a file of the set is missing or was added`);
    }
    let handle: FileHandle;
    try {
      handle = await open(ref.path, 'r');
    } catch (err) {
      throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', `cannot open audit file ${ref.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      last = { ...(await scanAuditHandle(handle, verifier)), path: ref.path };
    } catch (err) {
      throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', `cannot read audit file ${ref.path}: ${(err as Error).message}`, { cause: err });
    } finally {
      await handle.close();
    }
    if (last.failure) return fail(ref.path, last.failure.line, last.failure.reason);
    const isLast = i === files.length - 1;
    if (last.torn && !last.torn.complete && !(isLast && ref.path === tornTailAllowedIn)) return fail(ref.path, last.lines + 1, 'incomplete final line (no trailing newline)');
  }
  const end = verifier.finish();
  if (end) return fail(files.at(-1)?.path, (last?.lines ?? 0) + 1, end.reason, end.truncated);
  const strict = options.publicKey !== undefined;
  const cp = verifier.lastCheckpoint;
  return {
    result: {
      ok: true, entries: verifier.entries, lastHash: verifier.lastHash,
      ...(strict ? { checkpoints: verifier.checkpoints, unsignedEntries: verifier.unsignedEntries, ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, signedAt: cp.signedAt } } : {}) } : {}),
      ...(files.length > 1 ? { files: files.map((f) => f.path) } : {}),
    },
    verifier,
    last,
  };
}

/** Verifies the active file and its rotated siblings. Throws ERR_AUDIT_UNAVAILABLE if they cannot be read. */
export async function verifyAuditSet(activePath: string, options: ChainCheckOptions = {}): Promise<AuditVerifyResult> {
  return (await scanAuditFiles(auditFileSet(activePath), options)).result;
}

/** Verifies the hash chain of one file (no signatures); `expectedHead` (kept elsewhere) detects a cut tail. */
export async function verifyAuditFile(path: string, expectedHead?: AuditHead): Promise<AuditVerifyResult> {
  const anchor = expectedHead === undefined ? undefined : { headSeq: expectedHead.seq, headHash: expectedHead.hash };
  return (await scanAuditFiles([{ path }], { anchor })).result;
}
