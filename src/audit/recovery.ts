/**
 * The probe, every second (probeIntervalMs): while the log is healthy it runs the identity watch
 * between batches (file-identity.ts); once a write or sync has failed it tries to recover: cut the
 * file back to its last durable byte, append a `recovered` entry, and take appends again once that
 * is durable. A terminal failure (the file is not ours any more) is never recovered from.
 */
import { isoNow } from './clock.js';
import { sealSystemLine, type SystemEntry } from './entry.js';
import type { WrapIo } from './file-io.js';
import type { GroupCommitWriter } from './group-commit.js';
import { openNextFile } from './rotation.js';

export class RecoveryProbe {
  readonly #writer: GroupCommitWriter;
  readonly #wrapIo: WrapIo | undefined;
  readonly #warn: (message: string) => void;
  readonly #error: (message: string) => void;
  #recovering = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(writer: GroupCommitWriter, wrapIo: WrapIo | undefined, warn: (message: string) => void, error: (message: string) => void) {
    this.#writer = writer;
    this.#wrapIo = wrapIo;
    this.#warn = warn;
    this.#error = error;
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => this.#probe(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Is the path still our file? And, when failed, can the log recover? */
  #probe(): void {
    const w = this.#writer;
    if (w.closing) return;
    if (w.failure !== undefined) {
      if (!w.failure.terminal) void this.#tryRecover();
      return;
    }
    const moved = w.checkIdentity();
    if (moved) w.fail(new Error(moved.message), [], moved.reason, true);
  }

  /** Cuts what was not acknowledged, appends a `recovered` entry; healthy again once that is durable. */
  async #tryRecover(): Promise<void> {
    const w = this.#writer;
    const failure = w.failure;
    // Only once no batch is in flight: the file's durable end must be settled before it is cut to it.
    if (!failure || this.#recovering || w.busy || w.closing) return;
    this.#recovering = true;
    try {
      if (w.needsNextFile) await openNextFile(w, this.#wrapIo);
      const droppedBytes = await w.file.io.truncate(w.file.durableBytes);
      const entry: SystemEntry = {
        seq: w.durable.seq + 1, time: isoNow(), prev: w.durable.hash, type: 'recovered',
        data: { reason: failure.reason, failedAt: failure.at, droppedBytes },
      };
      const { hash, line } = sealSystemLine(entry);
      const data = Buffer.from(`${line}\n`, 'utf8');
      await w.file.io.write(data);
      await w.file.io.datasync();
      const moved = w.checkIdentity(w.file.durableBytes + data.length, w.file.durableBytes + data.length);
      if (moved) {
        failure.terminal = true;
        failure.reason = moved.reason;
        this.#error(`audit log cannot recover: ${moved.message}`);
        return;
      }
      w.recovered({ seq: entry.seq, hash }, w.file.durableBytes + data.length);
      this.#warn(`audit log recovered (was failed since ${failure.at}: ${failure.reason}); ${droppedBytes} unacknowledged bytes dropped`);
    } catch {
      // Still not writable; the next probe tries again.
    } finally {
      this.#recovering = false;
    }
  }
}
