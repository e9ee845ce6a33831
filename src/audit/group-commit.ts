/**
 * The audit log's writer core: sequencing, sealing and group commit. An append resolves only once
 * its line is on disk (write + fdatasync); appends that arrive while a flush is in flight share the
 * next one. This is the per-request hot path: no await and no allocation beyond the entry's own.
 *
 * The writer owns the chain's heads, the active file and its byte counts, and the failure state.
 * The rarely-running machinery around it (checkpoint-schedule.ts, rotation.ts, recovery.ts) reads
 * them through getters and changes them only through the transitions at the end of this class.
 */
import { KeyholdError } from '../errors.js';
import { isoNow } from './clock.js';
import { recordProblem, sealLine, sealSystemLine, type AuditEntry, type AuditHead, type AuditRecord, type SystemEntry, type SystemEntryType } from './entry.js';
import { errnoOf, failedError, unavailable, type Failure } from './failure.js';
import { identityProblem, type FileIdentity, type IdentityProblem } from './file-identity.js';
import type { AuditIo } from './file-io.js';

const MAX_OVERLAPPING_SYNCS = 4;

interface Pending {
  line: string;
  head: AuditHead;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Rotate the file once this entry (a checkpoint) is durable. */
  rotate?: boolean;
}

/** The file the writer appends to, as open() found (and repaired) it. */
export interface ActiveFile {
  io: AuditIo;
  identity: FileIdentity;
  /** Its length, all of it durable. */
  bytes: number;
  /** Seq of its first entry (the next one when it is empty): names it when it is rotated. */
  firstSeq: number;
}

/** The active file as the writer tracks it; rotation replaces it as a whole. */
export interface WriterFile {
  readonly io: AuditIo;
  readonly identity: FileIdentity;
  /** Seq of its first entry (the next one when it is empty): names it when it is rotated. */
  readonly firstSeq: number;
  /** Bytes written to it, synced or not. */
  bytes: number;
  /** Bytes of it known to be on disk. */
  durableBytes: number;
}

/** Where the writer hands over, between batches, to the machinery around it. */
export interface WriterHooks {
  /** Per batch, not per entry, once it is durable: is a checkpoint or a rotation due? */
  afterDurable(): void;
  /** The batch that ends with a rotation's checkpoint is acknowledged: rename and go on in a new file. */
  rotate(): Promise<void>;
}

export class GroupCommitWriter {
  readonly path: string;
  /** close() has begun: appends are refused; the log's own entries (the final checkpoint) still go. */
  closing = false;
  /** Rotation is moving the file: the path names no file, or the next one, so the identity watch stands aside. */
  rotating = false;
  /** Rotation renamed the active file but could not create the next one yet (recovery does). */
  needsNextFile = false;
  rotatedFiles: number;
  #file: WriterFile;
  #assigned: AuditHead; // last entry handed a seq (maybe not yet durable)
  #durable: AuditHead; // last entry known to be on disk
  #queue: Pending[] = [];
  #flushing = false;
  #idleWaiters: (() => void)[] = [];
  #failure: Failure | undefined;
  #flushes = 0;
  #acknowledged: Promise<void> = Promise.resolve();
  #inFlightSyncs = 0;
  #rotationsQueued = 0;
  readonly #hooks: WriterHooks;
  readonly #error: (message: string) => void;

  constructor(path: string, file: ActiveFile, head: AuditHead, rotatedFiles: number, hooks: WriterHooks, error: (message: string) => void) {
    this.path = path;
    this.#file = { io: file.io, identity: file.identity, firstSeq: file.firstSeq, bytes: file.bytes, durableBytes: file.bytes };
    this.#assigned = head;
    this.#durable = head;
    this.rotatedFiles = rotatedFiles;
    this.#hooks = hooks;
    this.#error = error;
  }

  /** The active file (the writer's own object: read it, do not keep it across a rotation). */
  get file(): Readonly<WriterFile> {
    return this.#file;
  }

  get failure(): Failure | undefined {
    return this.#failure;
  }

  /** The last entry known to be durable (the writer's own object: copy it to keep it). */
  get durable(): AuditHead {
    return this.#durable;
  }

  /** Number of completed write+fdatasync rounds (each may carry many entries). */
  get flushes(): number {
    return this.#flushes;
  }

  /** A batch is being written or synced: the file's end is not settled. */
  get busy(): boolean {
    return this.#flushing || this.#inFlightSyncs > 0;
  }

  /**
   * Appends an entry; resolves once it is durably written. Seq (and so chain order) follows call
   * order. Rejects with ERR_AUDIT_UNAVAILABLE on I/O failure or after close, ERR_INTERNAL for a
   * malformed record (which takes no seq, so the chain is unaffected).
   */
  append(record: AuditRecord): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(failedError(this.#failure));
    if (this.closing) return Promise.reject(unavailable('audit log is closed'));
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

  /** Entries the log writes itself; allowed while closing (the final checkpoint). */
  appendSystem(type: SystemEntryType, data: Record<string, string | number>, rotate = false): Promise<AuditHead> {
    if (this.#failure !== undefined) return Promise.reject(failedError(this.#failure));
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

  /** Resolves once no flush is running (at once if none is). */
  idle(): Promise<void> {
    return new Promise<void>((done) => (this.#flushing ? this.#idleWaiters.push(done) : done()));
  }

  /** Is the path still the active file, holding at least `least` and at most `written` bytes? See file-identity.ts. */
  checkIdentity(least = this.#file.durableBytes, written = this.#file.bytes): IdentityProblem | undefined {
    if (this.rotating) return undefined;
    return identityProblem(this.path, this.#file.identity, least, written);
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
        for (const p of batch) p.reject(failedError(this.#failure));
        continue;
      }
      const data = Buffer.from(batch.map((p) => `${p.line}\n`).join(''), 'utf8');
      // Counted before the write, so an identity check running meanwhile never sees more bytes than
      // were counted. A failed write fails the log, and recovery recounts from the durable length.
      this.#file.bytes += data.length;
      const endBytes = this.#file.bytes;
      try {
        await this.#file.io.write(data);
      } catch (err) {
        this.fail(err, batch);
        continue;
      }
      const synced = this.#file.io.datasync();
      const previous = this.#acknowledged;
      this.#inFlightSyncs++;
      this.#acknowledged = (async () => {
        try {
          await synced;
        } catch (err) {
          await previous;
          this.fail(err, batch);
          return;
        } finally {
          this.#inFlightSyncs--;
        }
        await previous;
        if (this.#failure !== undefined) {
          // An earlier batch failed to sync: this one may sit behind a hole, so it is not acknowledged.
          for (const p of batch) p.reject(failedError(this.#failure));
          return;
        }
        // Durable, but in the file the path names? A deleted or replaced file loses it: not acknowledged.
        const moved = this.checkIdentity(endBytes);
        if (moved) {
          this.fail(new Error(moved.message), batch, moved.reason, true);
          return;
        }
        this.#flushes += 1;
        this.#durable = batch[batch.length - 1]?.head ?? this.#durable;
        this.#file.durableBytes = endBytes;
        for (const p of batch) p.resolve();
        this.#hooks.afterDurable();
      })();
      if (rotate) {
        await this.#acknowledged;
        if (this.#failure === undefined) await this.#hooks.rotate();
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

  /** Fails the log (the first failure is the one kept and reported) and rejects `batch`. */
  fail(err: unknown, batch: Pending[], reason = errnoOf(err), terminal = false): void {
    if (this.#failure === undefined) {
      this.#failure = { error: unavailable(`audit log write failed: ${(err as Error).message}`, err), reason, at: new Date().toISOString(), terminal };
      this.#error(`audit log failed (${reason}): ${(err as Error).message}; audited requests are refused${terminal ? ' until restart' : ' until it recovers'}`);
    }
    for (const p of batch) p.reject(this.#failure.error);
  }

  /** Rotation: the next file is open and empty; the chain goes on in it. Returns the old file's io, to close. */
  switchFile(io: AuditIo, identity: FileIdentity): AuditIo {
    const old = this.#file.io;
    this.#file = { io, identity, firstSeq: this.#durable.seq + 1, bytes: 0, durableBytes: 0 };
    this.needsNextFile = false;
    return old;
  }

  /** Recovery made `head` durable, ending the file at `bytes`: the log takes appends again. */
  recovered(head: AuditHead, bytes: number): void {
    this.#file.bytes = bytes;
    this.#file.durableBytes = bytes;
    this.#durable = head;
    this.#assigned = head;
    this.#acknowledged = Promise.resolve();
    this.#failure = undefined;
  }
}
