/**
 * Resuming the chain at open: the whole set (rotated files, then the active one) is checked
 * without writing anything, then the active file is opened for appending and a torn final line is
 * repaired. What the writer, the checkpoint schedule and the log's repair entry start from.
 */
import { lstatSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { KeyholdError } from '../errors.js';
import type { ChainCheckOptions } from './chain-check.js';
import type { StoredCheckpoint } from './checkpoint.js';
import type { AuditHead } from './entry.js';
import { unavailable } from './failure.js';
import { auditIo, openForAppend, type WrapIo } from './file-io.js';
import { rotatedFiles } from './files.js';
import type { ActiveFile } from './group-commit.js';
import { auditFileSet, scanAuditFiles } from './verify.js';

export interface ResumeOptions {
  wrapIo?: WrapIo;
  check?: ChainCheckOptions;
  start?: Record<string, string | number>;
  /** Checkpoints are configured: the chain must have an id. */
  checkpoints: boolean;
  warn?: (message: string) => void;
}

export interface ResumedChain {
  file: ActiveFile;
  head: AuditHead;
  /** Bytes of a torn final line removed (0 if none). */
  repairedBytes: number;
  /** The final line was a complete entry missing only its newline; the newline was added. */
  repairedNewline: boolean;
  rotatedFiles: number;
  chain: string | undefined;
  lastCheckpoint: StoredCheckpoint | undefined;
}

/** `key` is the resolved path, `path` the configured one (for messages). */
export async function resumeChain(key: string, path: string, options: ResumeOptions): Promise<ResumedChain> {
  // Checked before the scan reads through it; openForAppend's O_NOFOLLOW closes the gap after.
  if (lstatSync(key, { throwIfNoEntry: false })?.isSymbolicLink()) throw unavailable(`audit log ${path} is a symbolic link; configure the path of the file itself`);
  const set = auditFileSet(key);
  const scan = await scanAuditFiles(set, options.check, key);
  if (!scan.result.ok) {
    const { line, badSeq, reason, file, truncated } = scan.result;
    const where = file === undefined ? `audit log ${path}` : `audit file ${file}`;
    throw new KeyholdError('ERR_AUDIT_CHAIN_BROKEN', `${where} ${truncated ? 'is truncated' : 'is damaged'} at line ${line} (seq ${badSeq}): ${reason}`, {
      details: { line, badSeq, reason, ...(file ? { file } : {}), ...(truncated ? { truncated } : {}) },
    });
  }
  const { verifier } = scan;
  const activeScan = scan.last?.path === key ? scan.last : undefined;
  let handle: FileHandle;
  try {
    handle = await openForAppend(key);
  } catch (err) {
    throw unavailable(`cannot open audit log ${path}: ${(err as Error).message}`, err);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw unavailable(`audit log ${path} is not a regular file`);
    let bytes = activeScan?.validBytes ?? 0;
    let repairedBytes = 0;
    let repairedNewline = false;
    if (activeScan?.torn?.complete) {
      // The entry is whole and chain-correct; only its newline was lost. Keep it.
      await handle.write(Buffer.from('\n'));
      await handle.datasync();
      bytes += 1;
      repairedNewline = true;
      options.warn?.(`audit log ${path}: the last entry (seq ${verifier.entries}) had no final newline; added it`);
    } else if (activeScan?.torn) {
      // A final line that is not a whole entry was never acknowledged (its fdatasync never returned).
      repairedBytes = stat.size - bytes;
      await handle.truncate(bytes);
      await handle.datasync();
      options.warn?.(`audit log ${path}: dropped ${repairedBytes} bytes of an incomplete final line after seq ${verifier.entries}`);
    } else if (stat.size !== bytes) {
      throw unavailable(`audit log ${path} changed while it was being opened`);
    }
    const io = auditIo(handle, options.wrapIo);
    const chain = verifier.chainId ?? (typeof options.start?.['chain'] === 'string' ? options.start['chain'] : undefined);
    if (options.checkpoints && chain === undefined) throw new KeyholdError('ERR_INTERNAL', 'audit checkpoints need a chain id');
    const lines = activeScan?.lines ?? 0;
    return {
      file: { io, identity: { dev: stat.dev, ino: stat.ino }, bytes, firstSeq: verifier.entries - lines + 1 },
      head: { seq: verifier.entries, hash: verifier.lastHash },
      repairedBytes, repairedNewline, rotatedFiles: rotatedFiles(key).length, chain,
      lastCheckpoint: verifier.lastCheckpoint,
    };
  } catch (err) {
    await handle.close().catch(() => undefined);
    if (err instanceof KeyholdError) throw err;
    throw unavailable(`cannot read audit log ${path}: ${(err as Error).message}`, err);
  }
}
