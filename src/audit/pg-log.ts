/**
 * The audit log in PostgreSQL (docs/design-notes.md, "Audit in the write's transaction"): the
 * table `audit (chain, seq, entry)`, one hash chain per writer process, each entry the exact
 * canonical line the file log would hold, with the same HSM-signed checkpoints.
 *
 * A request's record travels with it (an AsyncLocalStorage scope around its handler) and is
 * inserted in the same transaction as the first storage write the request makes: a write whose
 * audit insert fails is rolled back, and nothing is committed that the log does not name. A
 * request that wrote nothing gets its record with its outcome record. Every entry is inserted by
 * PostgresStorage's write pipeline, which runs one transaction at a time per process, so the seq
 * of this process's chain follows commit order.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { KeyholdError } from '../errors.js';
import { isUnavailable } from '../storage/postgres-errors.js';
import type { PostgresStorage, WriteHook, WriteInfo } from '../storage/postgres.js';
import { CheckpointScheduler, type AuditCheckpointing } from './checkpoint-schedule.js';
import type { StoredCheckpoint } from './checkpoint.js';
import { isoNow } from './clock.js';
import { GENESIS_HASH, recordProblem, sealLine, sealSystemLine, type AuditHead, type AuditRecord, type SystemEntryType } from './entry.js';
import { failedError, unavailable, type Failure } from './failure.js';
import type { AuditLogStatus } from './file-log.js';
import type { AuditLog, RequestAuditScope } from './log.js';
import type { AuditFileMirror } from './pg-mirror.js';

/** The scope of the request whose handler is running; PostgresStorage reads it for every write. */
const requestScope = new AsyncLocalStorage<RequestAuditScope>();

/** Records to commit without a write of their own (outcome records, the log's own entries). */
class AuditAppend {
  /** Where a system entry landed, once its transaction committed. */
  head: AuditHead | undefined;
  constructor(
    readonly scope: RequestAuditScope | undefined,
    readonly record: AuditRecord | undefined,
    readonly system: { type: SystemEntryType; data: Record<string, string | number> } | undefined,
  ) {}
}

/** The entries a write transaction adds to the chain, and the requests whose records they are. */
interface Draft { head: AuditHead; scopes: RequestAuditScope[]; lines: string[] }

const INSERT = 'INSERT INTO audit (chain, seq, entry) SELECT $1, s, e FROM unnest($2::bigint[], $3::text[]) AS t(s, e)';

export interface PostgresAuditLogOptions {
  /** This chain's random id (32 hex), named by its chain-start entry. */
  chain: string;
  /** Data of the chain-start entry (holds `chain`). */
  start: Record<string, string | number>;
  checkpoints?: AuditCheckpointing;
  warn?: (message: string) => void;
  error?: (message: string) => void;
  /** How often a failed log tries to write again (default 1000 ms). */
  probeIntervalMs?: number;
  /** The file that copies this chain's committed entries (audit.path: the second sink). */
  mirror?: AuditFileMirror;
}

export class PostgresAuditLog implements AuditLog {
  readonly chain: string;
  /** No rotation in a table: the scheduler's file-size rule never fires. */
  readonly file = { bytes: 0 } as const;
  closing = false;
  readonly recordsWithWrites = { run: <T>(scope: RequestAuditScope, fn: () => T): T => requestScope.run(scope, fn) };
  readonly #storage: PostgresStorage;
  readonly #scheduler: CheckpointScheduler;
  readonly #error: (message: string) => void;
  readonly #warn: (message: string) => void;
  #durable: AuditHead = { seq: 0, hash: GENESIS_HASH };
  #failure: Failure | undefined;
  #flushes = 0;
  /** What the transaction being committed adds: taken as done only once it has committed. */
  #draft: Draft | undefined;
  readonly #mirror: AuditFileMirror | undefined;
  #removeHook: () => void = () => undefined;
  #probe: NodeJS.Timeout | undefined;
  #recovering = false;
  #closed: Promise<void> | undefined;

  private constructor(storage: PostgresStorage, options: PostgresAuditLogOptions) {
    this.#storage = storage;
    this.chain = options.chain;
    const warn = options.warn ?? (() => undefined);
    this.#warn = warn;
    this.#error = options.error ?? warn;
    this.#mirror = options.mirror;
    this.#scheduler = new CheckpointScheduler(this, { config: options.checkpoints, chain: options.chain, last: undefined, maxFileBytes: undefined, warn });
  }

  /** Starts a new chain in the table (its chain-start entry) and hooks the log into every write transaction. */
  static async open(storage: PostgresStorage, options: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
    const log = new PostgresAuditLog(storage, options);
    const hook: WriteHook = { beforeCommit: (client, writes) => log.#beforeCommit(client, writes), afterCommit: () => log.#afterCommit() };
    log.#removeHook = storage.addWriteHook(hook);
    storage.contextOf = () => requestScope.getStore();
    try {
      await log.appendSystem('chain-start', options.start);
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
    log.#scheduler.start();
    log.#probe = setInterval(() => log.#recover(), options.probeIntervalMs ?? 1000);
    log.#probe.unref();
    return log;
  }

  get healthy(): boolean {
    return this.#failure === undefined;
  }

  get failure(): Failure | undefined {
    return this.#failure;
  }

  /** The last entry committed. */
  get durable(): AuditHead {
    return this.#durable;
  }

  get head(): AuditHead {
    return { ...this.#durable };
  }

  get flushes(): number {
    return this.#flushes;
  }

  get lastCheckpoint(): StoredCheckpoint | undefined {
    return this.#scheduler.lastCheckpoint;
  }

  get status(): AuditLogStatus {
    const f = this.#failure;
    const cp = this.#scheduler.lastCheckpoint;
    return {
      ok: f === undefined,
      ...(f ? { reason: f.reason, terminal: f.terminal, failedAt: f.at } : {}),
      rotatedFiles: 0,
      chain: this.chain,
      ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, time: cp.signedAt } } : {}),
    };
  }

  /** Appends `record` (after the scope's request record, if no write carried it); resolves once committed. */
  append(record: AuditRecord, scope?: RequestAuditScope): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(failedError(this.#failure));
    if (this.closing) return Promise.reject(unavailable('audit log is closed'));
    const problem = recordProblem(record);
    if (problem !== undefined) return Promise.reject(new KeyholdError('ERR_INTERNAL', `malformed audit record: ${problem}`));
    return this.#storage.commitContext(new AuditAppend(scope, record, undefined));
  }

  /** The log's own entries (chain-start, checkpoint, recovered); allowed while closing (the final checkpoint). */
  async appendSystem(type: SystemEntryType, data: Record<string, string | number>): Promise<AuditHead> {
    if (this.#failure !== undefined && type !== 'recovered') throw failedError(this.#failure);
    const append = new AuditAppend(undefined, undefined, { type, data });
    await this.#storage.commitContext(append);
    return append.head as AuditHead;
  }

  checkpoint(): Promise<StoredCheckpoint | undefined> {
    return this.#scheduler.checkpoint(false);
  }

  /** Writes a final checkpoint, then unhooks from storage. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.closing = true;
      clearInterval(this.#probe);
      this.#scheduler.stop();
      await this.#scheduler.drain();
      if (this.#scheduler.finalDue) await this.checkpoint().catch((err: unknown) => this.#error(`final audit checkpoint failed: ${(err as Error).message}`));
      this.#removeHook();
      this.#storage.contextOf = undefined;
      this.#mirror?.close();
    })();
    return this.#closed;
  }

  /**
   * Catches up with a transaction whose COMMIT went out but whose answer never came back (the
   * connection died in between: PostgreSQL stopped, a network cut). It may have committed. If it
   * did, its entries are in the table after the head this process knows, and sealing the next
   * entries after the stale head would collide on (chain, seq) for ever: the log would stay failed
   * until a restart. So the next transaction reads what the table holds past the known head, in
   * its own snapshot (only this process writes this chain), and takes it as durable.
   */
  async #catchUp(client: Parameters<WriteHook['beforeCommit']>[0], unconfirmed: Draft): Promise<void> {
    const { rows } = await client.query<{ seq: string; entry: string }>({
      name: 'keyhold_audit_catch_up',
      text: 'SELECT seq, entry FROM audit WHERE chain = $1 AND seq > $2 ORDER BY seq',
      values: [this.chain, this.#durable.seq],
    });
    if (rows.length === 0) return; // it did not commit
    const lines = rows.map((r) => r.entry);
    const last = rows[rows.length - 1] as { seq: string; entry: string };
    const hash = (JSON.parse(last.entry) as { hash?: unknown }).hash;
    if (typeof hash !== 'string') throw unavailable(`audit chain ${this.chain}: entry ${last.seq} in the table has no hash`);
    // When they are that draft's lines, its requests' records are in the table: not to be recorded again.
    const same = lines.length === unconfirmed.lines.length && lines.every((l, i) => l === unconfirmed.lines[i]);
    this.#warn(`audit chain ${this.chain}: a commit whose answer was lost had committed; ${lines.length} entries taken as durable (seq ${last.seq})`);
    this.#tookDurable({ head: { seq: Number(last.seq), hash }, lines, scopes: same ? unconfirmed.scopes : [] });
  }

  /** Seals the transaction's entries after the committed head and inserts them, all in one statement. */
  async #beforeCommit(client: Parameters<WriteHook['beforeCommit']>[0], writes: readonly WriteInfo[]): Promise<void> {
    // A draft still here is an attempt afterCommit never confirmed: rolled back, or lost in COMMIT.
    const unconfirmed = this.#draft;
    if (unconfirmed !== undefined && unconfirmed.lines.length > 0) await this.#catchUp(client, unconfirmed);
    let head = this.#durable;
    const seqs: number[] = [];
    const lines: string[] = [];
    const scopes: RequestAuditScope[] = [];
    const add = (sealed: { hash: string; line: string }, seq: number): AuditHead => {
      seqs.push(seq);
      lines.push(sealed.line);
      head = { seq, hash: sealed.hash };
      return head;
    };
    const addRecord = (record: AuditRecord) => {
      const seq = head.seq + 1;
      add(sealLine({ ...record, seq, time: isoNow(), prev: head.hash }), seq);
    };
    const addScope = (scope: RequestAuditScope | undefined) => {
      // Once per request: the first transaction that carries it (several writes may be in this one).
      if (scope === undefined || scope.recorded || scopes.includes(scope)) return;
      scopes.push(scope);
      addRecord(scope.request);
    };
    for (const w of writes) {
      const c = w.context;
      if (c instanceof AuditAppend) {
        addScope(c.scope);
        if (c.record) addRecord(c.record);
        if (c.system) {
          const seq = head.seq + 1;
          c.head = add(sealSystemLine({ seq, time: isoNow(), prev: head.hash, type: c.system.type, data: c.system.data }), seq);
        }
      } else if (c !== undefined) {
        addScope(c as RequestAuditScope);
      }
    }
    this.#draft = { head, scopes, lines };
    if (lines.length === 0) return;
    try {
      await client.query({ name: 'keyhold_audit_insert', text: INSERT, values: [this.chain, seqs, lines] });
    } catch (err) {
      // The database being away is the storage's error (503, retry); anything else is the log failing.
      if (isUnavailable(err)) throw err;
      this.#fail(err);
      throw unavailable(`audit insert failed: ${(err as Error).message}`, err);
    }
  }

  #afterCommit(): void {
    const draft = this.#draft;
    this.#draft = undefined;
    if (draft === undefined || draft.lines.length === 0) return;
    this.#tookDurable(draft);
  }

  /** Committed entries become the chain's head: copied to the mirror, their requests recorded, checkpoints told. */
  #tookDurable({ head, lines, scopes }: Draft): void {
    this.#durable = head;
    this.#mirror?.append(lines);
    this.#flushes += 1;
    for (const scope of scopes) scope.recorded = true;
    this.#scheduler.afterDurable();
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    const code = (err as { code?: unknown }).code;
    const reason = typeof code === 'string' ? `SQLSTATE_${code}` : 'INSERT_FAILED';
    this.#failure = { error: unavailable(`audit insert failed: ${(err as Error).message}`, err), reason, at: new Date().toISOString(), terminal: false };
    this.#error(`audit log failed (${reason}): ${(err as Error).message}; audited requests are refused until it recovers`);
  }

  /** While failed: tries to commit a `recovered` entry; once one commits, the log takes appends again. */
  #recover(): void {
    const f = this.#failure;
    if (f === undefined || this.closing || this.#recovering) return;
    this.#recovering = true;
    this.appendSystem('recovered', { reason: f.reason, failedAt: f.at })
      .then(() => { this.#failure = undefined; }, () => undefined)
      .finally(() => { this.#recovering = false; });
  }
}
