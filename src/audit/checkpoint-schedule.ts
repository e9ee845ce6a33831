/**
 * When checkpoints are written: every N entries and (per batch, never per entry) when the active
 * file is past maxFileBytes, with a rotation; every T seconds while there are new entries; and at
 * close. The durable head is signed by the HSM asynchronously, so appends go on meanwhile, and the
 * checkpoint takes the next seq when the signature is back. Checkpoints run one at a time.
 */
import { isoNow } from './clock.js';
import { makeCheckpoint, type CheckpointSigner, type StoredCheckpoint } from './checkpoint.js';
import type { GroupCommitWriter } from './group-commit.js';

/** What the scheduler needs of the log it checkpoints (the file writer, or the PostgreSQL log). */
export type CheckpointedWriter = Pick<GroupCommitWriter, 'durable' | 'failure' | 'closing' | 'fileBytes' | 'appendSystem'>;

export interface AuditCheckpointing {
  signer: CheckpointSigner;
  /** A checkpoint after this many entries since the last one. */
  everyEntries: number;
  /** And this often while there are entries since the last one. */
  intervalMs: number;
  /** Called once a checkpoint is durable in the file (the runtime puts it in the barrier). */
  onCheckpoint?: (checkpoint: StoredCheckpoint) => Promise<void>;
}

export class CheckpointScheduler {
  readonly chain: string | undefined;
  readonly #writer: CheckpointedWriter;
  readonly #config: AuditCheckpointing | undefined;
  readonly #maxFileBytes: number | undefined;
  readonly #warn: (message: string) => void;
  #last: StoredCheckpoint | undefined;
  #checkpoints: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #rotationRequested = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(writer: CheckpointedWriter, init: {
    config: AuditCheckpointing | undefined; chain: string | undefined; last: StoredCheckpoint | undefined; maxFileBytes: number | undefined; warn: (message: string) => void;
  }) {
    this.#writer = writer;
    this.#config = init.config;
    this.chain = init.chain;
    this.#last = init.last;
    this.#maxFileBytes = init.maxFileBytes;
    this.#warn = init.warn;
  }

  get lastCheckpoint(): StoredCheckpoint | undefined {
    return this.#last;
  }

  /** Signs the durable head now and appends the checkpoint; resolves with it once it is durable (and handed to onCheckpoint). */
  checkpoint(rotate: boolean): Promise<StoredCheckpoint | undefined> {
    this.#pending += 1;
    const run = this.#checkpoints.then(() => this.#run(rotate)).finally(() => { this.#pending -= 1; });
    this.#checkpoints = run.catch(() => undefined);
    return run;
  }

  /** Settles once the checkpoints asked for so far have run. */
  drain(): Promise<unknown> {
    return this.#checkpoints;
  }

  /** At close: entries since the last checkpoint, and a log that can still write one. */
  get finalDue(): boolean {
    return this.#config !== undefined && this.#writer.failure === undefined && this.#writer.durable.seq > (this.#last?.entrySeq ?? 0);
  }

  start(): void {
    const cp = this.#config;
    if (!cp) return;
    this.#timer = setInterval(() => {
      if (this.#writer.failure !== undefined || this.#writer.closing || this.#pending > 0) return;
      this.#rotationRequested = false; // a rotation whose checkpoint failed is asked for again
      if (this.#writer.durable.seq > (this.#last?.entrySeq ?? 0)) this.#auto(false);
    }, cp.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** The writer's hook, per batch once it is durable: is a checkpoint or a rotation due? */
  afterDurable(): void {
    const cp = this.#config;
    if (!cp || this.#writer.closing) return;
    const max = this.#maxFileBytes;
    if (max !== undefined && !this.#rotationRequested && this.#writer.fileBytes > max) {
      this.#rotationRequested = true;
      this.#auto(true);
      return;
    }
    if (this.#pending === 0 && this.#writer.durable.seq - (this.#last?.entrySeq ?? 0) >= cp.everyEntries) this.#auto(false);
  }

  /** The rotation asked for has run (or failed): a file still too large asks again. */
  rotationEnded(): void {
    this.#rotationRequested = false;
  }

  async #run(rotate: boolean): Promise<StoredCheckpoint | undefined> {
    const cp = this.#config;
    if (!cp || this.chain === undefined) return undefined;
    const head = { ...this.#writer.durable };
    if (head.seq === 0 || (!rotate && head.seq <= (this.#last?.entrySeq ?? 0))) return undefined;
    // The head as of now, already durable, so the signature never covers an entry that could be lost.
    const data = await makeCheckpoint(cp.signer, this.chain, head, isoNow());
    const entry = await this.#writer.appendSystem('checkpoint', { ...data }, rotate);
    const stored: StoredCheckpoint = { ...data, entrySeq: entry.seq, entryHash: entry.hash };
    this.#last = stored;
    await cp.onCheckpoint?.(stored);
    return stored;
  }

  #auto(rotate: boolean): void {
    this.checkpoint(rotate).catch((err: unknown) => {
      if (!this.#writer.closing) this.#warn(`audit checkpoint failed: ${(err as Error).message}`);
    });
  }
}
