/**
 * Append-only, hash-chained audit file with group commit. An append resolves only once its line is
 * on disk (write + fdatasync); appends that arrive while a flush is in flight share the next one.
 *
 * Around that hot path, rarely-running machinery (see docs/design-notes.md, "Audit log"):
 * - checkpoints: every N entries, every T seconds with new entries, and at close, the durable head
 *   is signed by the HSM (asynchronously: appends go on meanwhile) and the signature is appended.
 * - rotation: a file past maxFileBytes is closed with a checkpoint and renamed; the chain goes on.
 * - file identity: after every batch's fdatasync (before it is acknowledged) and every second,
 *   the path must still name the open file; a deleted or replaced file fails the log for good.
 * - recovery: a failed write or sync fails the log (every append rejects), and a probe every
 *   second truncates the file back to its last durable byte and appends a `recovered` entry; once
 *   that is durable the log is healthy again.
 */
import { lstatSync } from 'node:fs';
import { rename, type FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { KeyholdError } from '../errors.js';
import type { ChainCheckOptions } from './chain-check.js';
import { makeCheckpoint, type CheckpointSigner, type StoredCheckpoint } from './checkpoint.js';
import { isoNow } from './clock.js';
import { recordProblem, sealLine, sealSystemLine, type AuditEntry, type AuditHead, type AuditRecord, type SystemEntry, type SystemEntryType } from './entry.js';
import { errnoOf, failedError, unavailable, type Failure } from './failure.js';
import { identityProblem, type FileIdentity, type IdentityProblem } from './file-identity.js';
import { fileIo, openForAppend, type AuditIo } from './file-io.js';
import { rotatedFiles, rotatedName } from './files.js';
import { auditFileSet, scanAuditFiles } from './verify.js';

export type { AuditIo } from './file-io.js';

export interface AuditCheckpointing {
  signer: CheckpointSigner;
  /** A checkpoint after this many entries since the last one. */
  everyEntries: number;
  /** And this often while there are entries since the last one. */
  intervalMs: number;
  /** Called once a checkpoint is durable in the file (the runtime puts it in the barrier). */
  onCheckpoint?: (checkpoint: StoredCheckpoint) => Promise<void>;
}

export interface FileAuditLogOptions {
  wrapIo?: (io: AuditIo) => AuditIo;
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

const MAX_OVERLAPPING_SYNCS = 4;

interface Pending {
  line: string;
  head: AuditHead;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Rotate the file once this entry (a checkpoint) is durable. */
  rotate?: boolean;
}

// Two writers on one file would interleave two chains; refuse that within this process.
const openPaths = new Set<string>();

export class FileAuditLog {
  readonly path: string;
  /** Bytes of a torn final line removed when the file was opened (0 if none). */
  readonly repairedBytes: number;
  /** The final line was a complete entry missing only its newline; the newline was added. */
  readonly repairedNewline: boolean;
  #io: AuditIo;
  readonly #options: FileAuditLogOptions;
  readonly #warn: (message: string) => void;
  readonly #error: (message: string) => void;
  #identity: FileIdentity;
  #assigned: AuditHead; // last entry handed a seq (maybe not yet durable)
  #durable: AuditHead; // last entry known to be on disk
  #fileBytes: number; // bytes written to the active file
  #durableBytes: number; // bytes of the active file known to be on disk
  #activeFirstSeq: number;
  #queue: Pending[] = [];
  #flushing = false;
  #idleWaiters: (() => void)[] = [];
  #failure: Failure | undefined;
  #closing: Promise<void> | undefined;
  #flushes = 0;
  #acknowledged: Promise<void> = Promise.resolve();
  #inFlightSyncs = 0;
  #rotationsQueued = 0;
  #rotating = false;
  #rotationRequested = false;
  #rotatedFiles: number;
  #recovering = false;
  /** Rotation renamed the active file but could not create the next one yet. */
  #needsNextFile = false;
  #chain: string | undefined;
  #lastCheckpoint: StoredCheckpoint | undefined;
  #checkpoints: Promise<unknown> = Promise.resolve();
  #checkpointsPending = 0;
  #timers: NodeJS.Timeout[] = [];

  private constructor(path: string, io: AuditIo, head: AuditHead, init: {
    options: FileAuditLogOptions; identity: FileIdentity; bytes: number; activeFirstSeq: number;
    repairedBytes: number; repairedNewline: boolean; rotatedFiles: number; chain?: string; lastCheckpoint?: StoredCheckpoint;
  }) {
    this.path = path;
    this.#io = io;
    this.#assigned = head;
    this.#durable = head;
    this.#options = init.options;
    this.#warn = init.options.warn ?? (() => undefined);
    this.#error = init.options.error ?? this.#warn;
    this.#identity = init.identity;
    this.#fileBytes = init.bytes;
    this.#durableBytes = init.bytes;
    this.#activeFirstSeq = init.activeFirstSeq;
    this.repairedBytes = init.repairedBytes;
    this.repairedNewline = init.repairedNewline;
    this.#rotatedFiles = init.rotatedFiles;
    this.#chain = init.chain;
    this.#lastCheckpoint = init.lastCheckpoint;
  }

  /**
   * Checks the whole set (rotated files, then the active one) against `options.check` without
   * writing anything, and refuses with ERR_AUDIT_CHAIN_BROKEN when it fails. Then repairs a torn
   * tail, and writes the repair and chain-start entries that are due.
   */
  static async open(path: string, options: FileAuditLogOptions = {}): Promise<FileAuditLog> {
    const key = resolve(path);
    if (openPaths.has(key)) throw unavailable(`audit log ${path} is already open in this process`);
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
    let log: FileAuditLog;
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
      const io = options.wrapIo ? options.wrapIo(fileIo(handle)) : fileIo(handle);
      const chain = verifier.chainId ?? (typeof options.start?.['chain'] === 'string' ? options.start['chain'] : undefined);
      if (options.checkpoints && chain === undefined) throw new KeyholdError('ERR_INTERNAL', 'audit checkpoints need a chain id');
      const lines = activeScan?.lines ?? 0;
      log = new FileAuditLog(key, io, { seq: verifier.entries, hash: verifier.lastHash }, {
        options, identity: { dev: stat.dev, ino: stat.ino }, bytes, activeFirstSeq: verifier.entries - lines + 1,
        repairedBytes, repairedNewline, rotatedFiles: rotatedFiles(key).length, chain,
        lastCheckpoint: verifier.lastCheckpoint,
      });
    } catch (err) {
      await handle.close().catch(() => undefined);
      if (err instanceof KeyholdError) throw err;
      throw unavailable(`cannot read audit log ${path}: ${(err as Error).message}`, err);
    }
    openPaths.add(key);
    try {
      if (log.#durable.seq === 0 && options.start) await log.#appendSystem('chain-start', options.start);
      if (log.repairedBytes > 0) await log.#appendSystem('repair', { droppedBytes: log.repairedBytes, file: basename(key), reason: 'incomplete final line' });
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
    log.#startTimers();
    return log;
  }

  /** False once a write or sync has failed (until the recovery probe succeeds); then every append rejects. */
  get healthy(): boolean {
    return this.#failure === undefined;
  }

  get status(): AuditLogStatus {
    const f = this.#failure;
    const cp = this.#lastCheckpoint;
    return {
      ok: f === undefined,
      ...(f ? { reason: f.reason, terminal: f.terminal, failedAt: f.at } : {}),
      rotatedFiles: this.#rotatedFiles,
      ...(this.#chain ? { chain: this.#chain } : {}),
      ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, time: cp.signedAt } } : {}),
    };
  }

  /** Number of completed write+fdatasync rounds (each may carry many entries). */
  get flushes(): number {
    return this.#flushes;
  }

  /** The last entry known to be durable. */
  get head(): AuditHead {
    return { ...this.#durable };
  }

  get lastCheckpoint(): StoredCheckpoint | undefined {
    return this.#lastCheckpoint;
  }

  /**
   * Appends an entry; resolves once it is durably written. Seq (and so chain order) follows call
   * order. Rejects with ERR_AUDIT_UNAVAILABLE on I/O failure or after close, ERR_INTERNAL for a
   * malformed record (which takes no seq, so the chain is unaffected).
   */
  append(record: AuditRecord): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failedError());
    if (this.#closing !== undefined) return Promise.reject(unavailable('audit log is closed'));
    let line: string;
    let head: AuditHead;
    try {
      const problem = recordProblem(record);
      if (problem !== undefined) throw new Error(problem);
      const entry: AuditEntry = { ...record, seq: this.#assigned.seq + 1, time: isoNow(), prev: this.#assigned.hash };
      const sealed = sealLine(entry);
      line = sealed.line;
      head = { seq: entry.seq, hash: sealed.hash };
    } catch (err) {
      return Promise.reject(new KeyholdError('ERR_INTERNAL', `malformed audit record: ${(err as Error).message}`, { cause: err }));
    }
    this.#assigned = head;
    return new Promise<void>((resolvePromise, rejectPromise) => {
      this.#queue.push({ line, head, resolve: resolvePromise, reject: rejectPromise });
      this.#scheduleFlush();
    });
  }

  /**
   * Signs the durable head now and appends the checkpoint; resolves with it once it is durable
   * (and handed to onCheckpoint). Checkpoints run one at a time; appends go on while one signs.
   */
  checkpoint(rotate = false): Promise<StoredCheckpoint | undefined> {
    this.#checkpointsPending += 1;
    const run = this.#checkpoints.then(() => this.#runCheckpoint(rotate)).finally(() => { this.#checkpointsPending -= 1; });
    this.#checkpoints = run.catch(() => undefined);
    return run;
  }

  /** Waits for queued appends, writes a final checkpoint, then closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const t of this.#timers) clearInterval(t);
      await this.#checkpoints;
      await this.#idle();
      if (this.#options.checkpoints && this.#failure === undefined && this.#durable.seq > (this.#lastCheckpoint?.entrySeq ?? 0)) {
        await this.checkpoint().catch((err: unknown) => this.#warn(`final audit checkpoint failed: ${(err as Error).message}`));
        await this.#idle();
      }
      openPaths.delete(this.path);
      try {
        await this.#io.close();
      } catch (err) {
        // After a failure the file is already written off; otherwise closing must not hide an error.
        if (this.#failure === undefined) throw unavailable(`closing audit log failed: ${(err as Error).message}`, err);
      }
    })();
    return this.#closing;
  }

  #idle(): Promise<void> {
    return new Promise<void>((done) => (this.#flushing ? this.#idleWaiters.push(done) : done()));
  }

  async #runCheckpoint(rotate: boolean): Promise<StoredCheckpoint | undefined> {
    const cp = this.#options.checkpoints;
    if (!cp || this.#chain === undefined) return undefined;
    const head = { ...this.#durable };
    if (head.seq === 0 || (!rotate && head.seq <= (this.#lastCheckpoint?.entrySeq ?? 0))) return undefined;
    // The head as of now, already durable, so the signature never covers an entry that could be lost.
    const data = await makeCheckpoint(cp.signer, this.#chain, head, isoNow());
    const entry = await this.#appendSystem('checkpoint', { ...data }, rotate);
    const stored: StoredCheckpoint = { ...data, entrySeq: entry.seq, entryHash: entry.hash };
    this.#lastCheckpoint = stored;
    await cp.onCheckpoint?.(stored);
    return stored;
  }

  #autoCheckpoint(rotate: boolean): void {
    this.checkpoint(rotate).catch((err: unknown) => {
      if (this.#closing === undefined) this.#warn(`audit checkpoint failed: ${(err as Error).message}`);
    });
  }

  /** Entries the log writes itself; allowed while closing (the final checkpoint). */
  #appendSystem(type: SystemEntryType, data: Record<string, string | number>, rotate = false): Promise<AuditHead> {
    if (this.#failure !== undefined) return Promise.reject(this.#failedError());
    const entry: SystemEntry = { seq: this.#assigned.seq + 1, time: isoNow(), prev: this.#assigned.hash, type, data };
    const { hash, line } = sealSystemLine(entry);
    const head = { seq: entry.seq, hash };
    this.#assigned = head;
    return new Promise<AuditHead>((resolvePromise, rejectPromise) => {
      this.#queue.push({ line, head, resolve: () => resolvePromise(head), reject: rejectPromise, ...(rotate ? { rotate } : {}) });
      if (rotate) this.#rotationsQueued += 1;
      this.#scheduleFlush();
    });
  }

  #startTimers(): void {
    const probeMs = this.#options.probeIntervalMs ?? 1000;
    this.#timers.push(setInterval(() => this.#probe(), probeMs));
    const cp = this.#options.checkpoints;
    if (cp) {
      this.#timers.push(setInterval(() => {
        if (this.#failure !== undefined || this.#closing !== undefined || this.#checkpointsPending > 0) return;
        this.#rotationRequested = false; // a rotation whose checkpoint failed is asked for again
        if (this.#durable.seq > (this.#lastCheckpoint?.entrySeq ?? 0)) this.#autoCheckpoint(false);
      }, cp.intervalMs));
    }
    for (const t of this.#timers) t.unref();
  }

  /** Every second: is the path still our file? And, when failed, can the log recover? */
  #probe(): void {
    if (this.#closing !== undefined) return;
    if (this.#failure !== undefined) {
      if (!this.#failure.terminal) void this.#tryRecover();
      return;
    }
    const moved = this.#identityProblem();
    if (moved) this.#fail(new Error(moved.message), [], moved.reason, true);
  }

  /** Is the path still the active file, holding at least `least` and at most `written` bytes? See file-identity.ts. */
  #identityProblem(least = this.#durableBytes, written = this.#fileBytes): IdentityProblem | undefined {
    if (this.#rotating) return undefined;
    return identityProblem(this.path, this.#identity, least, written);
  }

  /** Cuts what was not acknowledged, appends a `recovered` entry; healthy again once that is durable. */
  async #tryRecover(): Promise<void> {
    const failure = this.#failure;
    if (!failure || this.#recovering || this.#flushing || this.#inFlightSyncs > 0 || this.#closing !== undefined) return;
    this.#recovering = true;
    try {
      if (this.#needsNextFile) await this.#openNextFile();
      const droppedBytes = await this.#io.truncate(this.#durableBytes);
      const entry: SystemEntry = {
        seq: this.#durable.seq + 1, time: isoNow(), prev: this.#durable.hash, type: 'recovered',
        data: { reason: failure.reason, failedAt: failure.at, droppedBytes },
      };
      const { hash, line } = sealSystemLine(entry);
      const data = Buffer.from(`${line}\n`, 'utf8');
      await this.#io.write(data);
      await this.#io.datasync();
      const moved = this.#identityProblem(this.#durableBytes + data.length, this.#durableBytes + data.length);
      if (moved) {
        failure.terminal = true;
        failure.reason = moved.reason;
        this.#error(`audit log cannot recover: ${moved.message}`);
        return;
      }
      this.#fileBytes = this.#durableBytes + data.length;
      this.#durableBytes = this.#fileBytes;
      this.#durable = { seq: entry.seq, hash };
      this.#assigned = this.#durable;
      this.#acknowledged = Promise.resolve();
      this.#failure = undefined;
      this.#warn(`audit log recovered (was failed since ${failure.at}: ${failure.reason}); ${droppedBytes} unacknowledged bytes dropped`);
    } catch {
      // Still not writable; the next probe tries again.
    } finally {
      this.#recovering = false;
    }
  }

  /**
   * Renames the full active file (its last entry is a checkpoint) and opens a new one; the chain
   * goes on. A failure is not terminal: a failed rename leaves the path naming the active file, and
   * after a rename the next file may be impossible to create for now (no inode or no room for the
   * directory entry on a full disk). Recovery then creates it (see #tryRecover).
   */
  async #rotate(): Promise<void> {
    this.#rotating = true;
    const target = rotatedName(this.path, this.#activeFirstSeq);
    try {
      await rename(this.path, target);
      this.#rotatedFiles += 1;
      this.#needsNextFile = true;
      await this.#openNextFile();
    } catch (err) {
      this.#fail(err, [], 'ROTATION_FAILED');
    } finally {
      this.#rotating = false;
      this.#rotationRequested = false;
    }
  }

  /** Creates the active file after a rename (O_EXCL: the path was just renamed away) and switches to it. */
  async #openNextFile(): Promise<void> {
    const handle = await openForAppend(this.path, true); // also syncs the directory (the rename with it)
    let stat;
    try {
      stat = await handle.stat();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    const old = this.#io;
    this.#io = this.#options.wrapIo ? this.#options.wrapIo(fileIo(handle)) : fileIo(handle);
    this.#identity = { dev: stat.dev, ino: stat.ino };
    this.#fileBytes = 0;
    this.#durableBytes = 0;
    this.#activeFirstSeq = this.#durable.seq + 1;
    this.#needsNextFile = false;
    await old.close().catch(() => undefined);
  }

  #failedError(): KeyholdError {
    return failedError(this.#failure);
  }

  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    // Deferred so that appends made in the same tick share the first flush too.
    queueMicrotask(() => void this.#flushLoop());
  }

  /**
   * Writes batches in order, one write at a time, but lets their fdatasyncs overlap: batch k is
   * acknowledged once its own fdatasync has returned and batch k-1 was acknowledged. An append
   * then waits for about one fdatasync instead of the tail of the previous flush plus its own.
   */
  async #flushLoop(): Promise<void> {
    while (this.#queue.length > 0) {
      let batch = this.#queue;
      this.#queue = [];
      let rotate = false;
      if (this.#rotationsQueued > 0) {
        // The file ends with the checkpoint that asks for rotation; later entries go to the next file.
        const cut = batch.findIndex((p) => p.rotate === true);
        if (cut !== -1) {
          this.#queue = batch.slice(cut + 1);
          batch = batch.slice(0, cut + 1);
          this.#rotationsQueued -= 1;
          rotate = true;
        }
      }
      if (this.#failure !== undefined) {
        for (const p of batch) p.reject(this.#failedError());
        continue;
      }
      const data = Buffer.from(batch.map((p) => `${p.line}\n`).join(''), 'utf8');
      // Counted before the write, so an identity check running meanwhile never sees more bytes than
      // were counted. A failed write fails the log, and recovery recounts from the durable length.
      this.#fileBytes += data.length;
      const endBytes = this.#fileBytes;
      try {
        await this.#io.write(data);
      } catch (err) {
        this.#fail(err, batch);
        continue;
      }
      const synced = this.#io.datasync();
      const previous = this.#acknowledged;
      this.#inFlightSyncs++;
      this.#acknowledged = (async () => {
        try {
          await synced;
        } catch (err) {
          await previous;
          this.#fail(err, batch);
          return;
        } finally {
          this.#inFlightSyncs--;
        }
        await previous;
        if (this.#failure !== undefined) {
          // An earlier batch failed to sync: this one may sit behind a hole, so it is not acknowledged.
          for (const p of batch) p.reject(this.#failedError());
          return;
        }
        // Durable, but in the file the path names? A deleted or replaced file loses it: not acknowledged.
        const moved = this.#identityProblem(endBytes);
        if (moved) {
          this.#fail(new Error(moved.message), batch, moved.reason, true);
          return;
        }
        this.#flushes += 1;
        this.#durable = batch[batch.length - 1]?.head ?? this.#durable;
        this.#durableBytes = endBytes;
        for (const p of batch) p.resolve();
        this.#afterDurable();
      })();
      if (rotate) {
        await this.#acknowledged;
        if (this.#failure === undefined) await this.#rotate();
        continue;
      }
      // Bound the overlap so a slow disk cannot pile up unbounded work in libuv's pool.
      if (this.#inFlightSyncs >= MAX_OVERLAPPING_SYNCS) await this.#acknowledged;
    }
    await this.#acknowledged;
    this.#flushing = false;
    if (this.#queue.length > 0) {
      this.#scheduleFlush();
      return;
    }
    for (const done of this.#idleWaiters.splice(0)) done();
  }

  /** Per batch, not per entry: is a checkpoint or a rotation due? */
  #afterDurable(): void {
    const cp = this.#options.checkpoints;
    if (!cp || this.#closing !== undefined) return;
    const max = this.#options.maxFileBytes;
    if (max !== undefined && !this.#rotationRequested && this.#fileBytes > max) {
      this.#rotationRequested = true;
      this.#autoCheckpoint(true);
      return;
    }
    if (this.#checkpointsPending === 0 && this.#durable.seq - (this.#lastCheckpoint?.entrySeq ?? 0) >= cp.everyEntries) this.#autoCheckpoint(false);
  }

  #fail(err: unknown, batch: Pending[], reason = errnoOf(err), terminal = false): void {
    if (this.#failure === undefined) {
      this.#failure = { error: unavailable(`audit log write failed: ${(err as Error).message}`, err), reason, at: new Date().toISOString(), terminal };
      this.#error(`audit log failed (${reason}): ${(err as Error).message}; audited requests are refused${terminal ? ' until restart' : ' until it recovers'}`);
    }
    for (const p of batch) p.reject(this.#failure.error);
  }
}
