/**
 * Append-only, hash-chained audit file with group commit: the log's public face, composed of one
 * module per concern (see docs/design-notes.md, "Audit log"):
 * - group-commit.ts: sequencing, sealing, write + fdatasync in batches (the per-request hot path);
 *   the heads, the active file and the failure state.
 * - checkpoint-schedule.ts: every N entries, every T seconds with new entries, and at close, the
 *   durable head is signed by the HSM (asynchronously: appends go on meanwhile) and appended.
 * - rotation.ts: a file past maxFileBytes is closed with a checkpoint and renamed; the chain goes on.
 * - file-identity.ts: after every batch's fdatasync and every second, the path must still name the
 *   open file, at the size written; a deleted, replaced or cut file fails the log for good.
 * - recovery.ts: the probe that runs that check every second and, after a failed write or sync,
 *   cuts the file back to its last durable byte and appends a `recovered` entry.
 * - resume.ts: checking the set and repairing a torn tail at open.
 */
import { basename, resolve } from 'node:path';
import type { ChainCheckOptions } from './chain-check.js';
import { CheckpointScheduler, type AuditCheckpointing } from './checkpoint-schedule.js';
import type { StoredCheckpoint } from './checkpoint.js';
import type { AuditHead, AuditRecord } from './entry.js';
import { unavailable } from './failure.js';
import type { WrapIo } from './file-io.js';
import { GroupCommitWriter } from './group-commit.js';
import { RecoveryProbe } from './recovery.js';
import { resumeChain, type ResumedChain } from './resume.js';
import { rotateActiveFile } from './rotation.js';

export type { AuditCheckpointing } from './checkpoint-schedule.js';
export type { AuditIo } from './file-io.js';

export interface FileAuditLogOptions {
  wrapIo?: WrapIo;
  /** What the existing files must satisfy (public key, chain id, the barrier's checkpoint). */
  check?: ChainCheckOptions;
  /** Data of the chain-start entry written when the set is empty; must hold `chain`. */
  start?: Record<string, string | number>;
  checkpoints?: AuditCheckpointing;
  /** Rotate the active file once it is larger than this. */
  maxFileBytes?: number;
  warn?: (message: string) => void;
  /** Where failures are reported (default: warn). */
  error?: (message: string) => void;
  /** Period of the file-identity check and of the recovery probe (default 1000 ms). */
  probeIntervalMs?: number;
}

/** What /v1/sys/health shows. */
export interface AuditLogStatus {
  ok: boolean;
  /** Why the log is failed: an errno code (ENOSPC, EIO, EPERM…), FILE_DELETED, FILE_REPLACED, FILE_TRUNCATED, FILE_APPENDED, … */
  reason?: string;
  /** Failed for good: only a restart (and maybe --new-audit-chain) helps. */
  terminal?: boolean;
  failedAt?: string;
  rotatedFiles: number;
  chain?: string;
  lastCheckpoint?: { seq: number; headSeq: number; time: string };
}

// Two writers on one file would interleave two chains; refuse that within this process.
const openPaths = new Set<string>();

export class FileAuditLog {
  readonly path: string;
  /** Bytes of a torn final line removed when the file was opened (0 if none). */
  readonly repairedBytes: number;
  /** The final line was a complete entry missing only its newline; the newline was added. */
  readonly repairedNewline: boolean;
  readonly #warn: (message: string) => void;
  readonly #writer: GroupCommitWriter;
  readonly #checkpoints: CheckpointScheduler;
  readonly #probe: RecoveryProbe;
  #closing: Promise<void> | undefined;

  private constructor(path: string, resumed: ResumedChain, options: FileAuditLogOptions) {
    this.path = path;
    this.repairedBytes = resumed.repairedBytes;
    this.repairedNewline = resumed.repairedNewline;
    const warn = options.warn ?? (() => undefined);
    const error = options.error ?? warn;
    this.#warn = warn;
    this.#writer = new GroupCommitWriter(path, resumed.file, resumed.head, resumed.rotatedFiles, {
      afterDurable: () => this.#checkpoints.afterDurable(),
      rotate: () => rotateActiveFile(this.#writer, options.wrapIo, () => this.#checkpoints.rotationEnded()),
    }, error);
    this.#checkpoints = new CheckpointScheduler(this.#writer, {
      config: options.checkpoints, chain: resumed.chain, last: resumed.lastCheckpoint, maxFileBytes: options.maxFileBytes, warn,
    });
    this.#probe = new RecoveryProbe(this.#writer, options.wrapIo, warn, error);
  }

  /**
   * Checks the whole set (rotated files, then the active one) against `options.check` without
   * writing anything, and refuses with ERR_AUDIT_CHAIN_BROKEN when it fails. Then repairs a torn
   * tail, and writes the repair and chain-start entries that are due.
   */
  static async open(path: string, options: FileAuditLogOptions = {}): Promise<FileAuditLog> {
    const key = resolve(path);
    if (openPaths.has(key)) throw unavailable(`audit log ${path} is already open in this process`);
    // Claimed before the first await: two opens racing on one path would otherwise both pass the check.
    openPaths.add(key);
    let resumed: ResumedChain;
    try {
      resumed = await resumeChain(key, path, { ...options, checkpoints: options.checkpoints !== undefined });
    } catch (err) {
      openPaths.delete(key);
      throw err;
    }
    const log = new FileAuditLog(key, resumed, options);
    try {
      if (resumed.head.seq === 0 && options.start) await log.#writer.appendSystem('chain-start', options.start);
      if (log.repairedBytes > 0) await log.#writer.appendSystem('repair', { droppedBytes: log.repairedBytes, file: basename(key), reason: 'incomplete final line' });
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
    log.#probe.start(options.probeIntervalMs ?? 1000);
    log.#checkpoints.start();
    return log;
  }

  /** False once a write or sync has failed (until the recovery probe succeeds); then every append rejects. */
  get healthy(): boolean {
    return this.#writer.failure === undefined;
  }

  get status(): AuditLogStatus {
    const f = this.#writer.failure;
    const cp = this.#checkpoints.lastCheckpoint;
    const chain = this.#checkpoints.chain;
    return {
      ok: f === undefined,
      ...(f ? { reason: f.reason, terminal: f.terminal, failedAt: f.at } : {}),
      rotatedFiles: this.#writer.rotatedFiles,
      ...(chain ? { chain } : {}),
      ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, time: cp.signedAt } } : {}),
    };
  }

  /** Number of completed write+fdatasync rounds (each may carry many entries). */
  get flushes(): number {
    return this.#writer.flushes;
  }

  /** The last entry known to be durable. */
  get head(): AuditHead {
    return { ...this.#writer.durable };
  }

  get lastCheckpoint(): StoredCheckpoint | undefined {
    return this.#checkpoints.lastCheckpoint;
  }

  /**
   * Appends an entry; resolves once it is durably written. Seq (and so chain order) follows call
   * order. Rejects with ERR_AUDIT_UNAVAILABLE on I/O failure or after close, ERR_INTERNAL for a
   * malformed record (which takes no seq, so the chain is unaffected).
   */
  append(record: AuditRecord): Promise<void> {
    return this.#writer.append(record);
  }

  /**
   * Signs the durable head now and appends the checkpoint; resolves with it once it is durable
   * (and handed to onCheckpoint). Checkpoints run one at a time; appends go on while one signs.
   */
  checkpoint(rotate = false): Promise<StoredCheckpoint | undefined> {
    return this.#checkpoints.checkpoint(rotate);
  }

  /** Waits for queued appends, writes a final checkpoint, then closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#writer.closing = true;
      this.#probe.stop();
      this.#checkpoints.stop();
      await this.#checkpoints.drain();
      await this.#writer.idle();
      if (this.#checkpoints.finalDue) {
        await this.checkpoint().catch((err: unknown) => this.#warn(`final audit checkpoint failed: ${(err as Error).message}`));
        await this.#writer.idle();
      }
      openPaths.delete(this.path);
      try {
        await this.#writer.file.io.close();
      } catch (err) {
        // After a failure the file is already written off; otherwise closing must not hide an error.
        if (this.#writer.failure === undefined) throw unavailable(`closing audit log failed: ${(err as Error).message}`, err);
      }
    })();
    return this.#closing;
  }
}
