/**
 * Append-only, hash-chained audit file with group commit. An append resolves only once its line is
 * on disk (write + fdatasync); appends that arrive while a flush is in flight share the next one.
 * Any I/O failure is terminal: the chain must never silently skip an entry, so every later append
 * fails too and the server is expected to stop serving audited requests until restarted.
 */
import { constants, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { KeyholdError } from '../errors.js';
import { recordProblem, sealLine, type AuditEntry, type AuditHead, type AuditRecord } from './entry.js';
import { scanAuditHandle } from './verify.js';

/** The three operations the log needs from its file; tests wrap them to inject I/O failures. */
export interface AuditIo {
  write(data: Buffer): Promise<void>;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export interface FileAuditLogOptions {
  wrapIo?: (io: AuditIo) => AuditIo;
}

const MAX_OVERLAPPING_SYNCS = 4;

interface Pending {
  line: string;
  head: AuditHead;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Date#toISOString costs about half a microsecond; entries within one millisecond share the text. */
let lastMillis = -1;
let lastIso = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}

// Two writers on one file would interleave two chains; refuse that within this process.
const openPaths = new Set<string>();

function unavailable(message: string, cause?: unknown): KeyholdError {
  return new KeyholdError('ERR_AUDIT_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
}

function fileIo(handle: FileHandle): AuditIo {
  return {
    async write(data) {
      // Synchronous on purpose: a page-cache write of one batch takes microseconds, less than the
      // hop to libuv's pool and back. Only the fdatasync, which waits for the disk, goes there.
      // O_APPEND: each write lands at the end; loop because writes may be partial.
      for (let offset = 0; offset < data.length; ) {
        const bytesWritten = writeSync(handle.fd, data, offset, data.length - offset, null);
        if (bytesWritten <= 0) throw new Error('write made no progress');
        offset += bytesWritten;
      }
    },
    datasync: () => handle.datasync(),
    close: () => handle.close(),
  };
}

/** Opens (creating with mode 0600 and syncing the directory entry) the file for appending. */
async function openForAppend(path: string): Promise<FileHandle> {
  const flags = constants.O_RDWR | constants.O_APPEND;
  let created: FileHandle;
  try {
    created = await open(path, flags | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return open(path, flags);
  }
  // A new file's directory entry must be durable too, or a crash could lose the whole log.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    await created.close();
    throw err;
  }
  return created;
}

export class FileAuditLog {
  readonly path: string;
  /** Bytes of a torn final line removed when the file was opened (0 if none). */
  readonly repairedBytes: number;
  readonly #io: AuditIo;
  #assigned: AuditHead; // last entry handed a seq (maybe not yet durable)
  #durable: AuditHead; // last entry known to be on disk
  #queue: Pending[] = [];
  #flushing = false;
  #idleWaiters: (() => void)[] = [];
  #failure: KeyholdError | undefined;
  #closing: Promise<void> | undefined;
  #flushes = 0;
  #acknowledged: Promise<void> = Promise.resolve();
  #inFlightSyncs = 0;

  private constructor(path: string, io: AuditIo, head: AuditHead, repairedBytes: number) {
    this.path = path;
    this.#io = io;
    this.#assigned = head;
    this.#durable = head;
    this.repairedBytes = repairedBytes;
  }

  static async open(path: string, options: FileAuditLogOptions = {}): Promise<FileAuditLog> {
    const key = resolve(path);
    if (openPaths.has(key)) throw unavailable(`audit log ${path} is already open in this process`);
    let handle: FileHandle;
    try {
      handle = await openForAppend(path);
    } catch (err) {
      throw unavailable(`cannot open audit log ${path}: ${(err as Error).message}`, err);
    }
    try {
      if (!(await handle.stat()).isFile()) throw unavailable(`audit log ${path} is not a regular file`);
      const scan = await scanAuditHandle(handle);
      let repaired = 0;
      if (!scan.result.ok) {
        const { line, badSeq, reason } = scan.result;
        if (!scan.tornTail) {
          throw new KeyholdError('ERR_AUDIT_CHAIN_BROKEN', `audit log ${path} is damaged at line ${line} (seq ${badSeq}): ${reason}`, {
            details: { line, badSeq, reason },
          });
        }
        // A final line without newline was never acknowledged: its fdatasync never returned.
        repaired = (await handle.stat()).size - scan.validBytes;
        await handle.truncate(scan.validBytes);
        await handle.datasync();
      }
      const io = options.wrapIo ? options.wrapIo(fileIo(handle)) : fileIo(handle);
      openPaths.add(key);
      return new FileAuditLog(key, io, scan.head, repaired);
    } catch (err) {
      await handle.close().catch(() => undefined);
      if (err instanceof KeyholdError) throw err;
      throw unavailable(`cannot read audit log ${path}: ${(err as Error).message}`, err);
    }
  }

  /** False once a write or sync has failed; from then on every append rejects. */
  get healthy(): boolean {
    return this.#failure === undefined;
  }

  /** Number of completed write+fdatasync rounds (each may carry many entries). */
  get flushes(): number {
    return this.#flushes;
  }

  /** The last entry known to be durable; keep it elsewhere to detect truncation with verifyAuditFile. */
  get head(): AuditHead {
    return { ...this.#durable };
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

  /** Waits for queued appends, then closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await new Promise<void>((done) => (this.#flushing ? this.#idleWaiters.push(done) : done()));
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

  #failedError(): KeyholdError {
    return unavailable('audit log is in a failed state after an earlier write failure', this.#failure);
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
      const batch = this.#queue;
      this.#queue = [];
      if (this.#failure !== undefined) {
        for (const p of batch) p.reject(this.#failedError());
        continue;
      }
      try {
        await this.#io.write(Buffer.from(batch.map((p) => `${p.line}\n`).join(''), 'utf8'));
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
        this.#flushes += 1;
        this.#durable = batch[batch.length - 1]?.head ?? this.#durable;
        for (const p of batch) p.resolve();
      })();
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

  #fail(err: unknown, batch: Pending[]): void {
    this.#failure ??= unavailable(`audit log write failed: ${(err as Error).message}`, err);
    for (const p of batch) p.reject(this.#failure);
  }
}
