/**
 * Approval requests in the barrier (`sys/approvals/requests/<id>`). Every change is a
 * compare-and-set of the whole record (BarrierView.update): a transition computed from a record
 * another approver or execution changed meanwhile is recomputed from the new one, so two approvals
 * both count and two executions cannot both begin. Creation is counted against the limits on open
 * requests (open-index.ts); deletion (the retention sweep) is conditional on the bytes read, so a
 * request changed meanwhile is never deleted, and of several sweeps racing one deletes it.
 */
import { randomBytes } from 'node:crypto';
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { limitError, limitReached, OPEN_INDEX_KEY, openEntry, unexpired, type ApprovalLimits, type OpenEntry, type OpenIndex } from './open-index.js';
import { isOpen, type ApprovalRecord } from './state.js';

/** `apr_` + 128 random bits (base64url): unguessable, so an id alone grants nothing and reveals nothing. */
export const APPROVAL_ID_PATTERN = /^apr_[A-Za-z0-9_-]{22}$/;
const PREFIX = 'requests/';
const MAX_ATTEMPTS = 64;
/** Records read at once by a sweep or a limit check. */
const READ_BATCH = 16;
/** How long a request a limit check found open is taken to be still open without reading it again. */
const SEEN_OPEN_MS = 60_000;

/** What a sweep pass did so far (kept up to date as it goes, so a pass that fails midway still reports its deletions). */
export interface SweepProgress {
  /** Requests this pass deleted (a request another pass deleted first is not counted here). */
  deleted: number;
}

export const newApprovalId = (): string => `apr_${randomBytes(16).toString('base64url')}`;

const notFound = (id: string) => new KeyholdError('ERR_APPROVAL_NOT_FOUND', `approval request ${id} does not exist`);

export class ApprovalRequestStore {
  /** Requests a limit check found open, and when (endedAmong); at most one entry per open request. */
  readonly #seenOpen = new Map<string, number>();

  constructor(private readonly view: BarrierView) {}

  /**
   * Stores a new request with its entry in the open-request index, in one commit conditional on
   * the index as read; refused with ERR_APPROVAL_LIMIT (nothing stored) when `limits` are reached.
   */
  async create(record: ApprovalRecord, limits: ApprovalLimits, now: number): Promise<void> {
    // Requests found ended while checking: final, so still ended on a retry.
    const ended = new Set<string>();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await this.view.read<OpenIndex>(OPEN_INDEX_KEY);
      let entries = unexpired(read.value?.entries ?? await this.openEntries(now), now).filter((e) => !ended.has(e.id));
      let reached = limitReached(entries, record.requester, limits);
      if (reached !== undefined) {
        // Entries may outlive their requests (open-index.ts): check the ones counted before refusing.
        const counted = reached === 'requester' ? entries.filter((e) => e.requester === record.requester) : entries;
        for (const id of await this.endedAmong(counted, now)) ended.add(id);
        entries = entries.filter((e) => !ended.has(e.id));
        reached = limitReached(entries, record.requester, limits);
        if (reached === 'total') {
          for (const id of await this.endedAmong(entries, now)) ended.add(id);
          entries = entries.filter((e) => !ended.has(e.id));
          reached = limitReached(entries, record.requester, limits);
        }
        if (reached !== undefined) throw limitError(reached, record.requester, limits);
      }
      const index: OpenIndex = { entries: [...entries, openEntry(record)] };
      if (await this.view.commit([read], [this.view.write(OPEN_INDEX_KEY, index), this.view.write(PREFIX + record.id, record)])) return;
    }
    throw new KeyholdError('ERR_CONFLICT', 'too many approval requests being created at once; retry');
  }

  /**
   * Drops the index entries of requests that ended (`ids`) or expired. Best effort for its callers:
   * an entry left behind only costs a check of its record when a limit is next reached.
   */
  async forget(ids: ReadonlySet<string>, now: number): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await this.view.read<OpenIndex>(OPEN_INDEX_KEY);
      if (read.value === null) return;
      const kept = unexpired(read.value.entries, now).filter((e) => !ids.has(e.id));
      if (kept.length === read.value.entries.length) return;
      if (await this.view.commit([read], [this.view.write(OPEN_INDEX_KEY, { entries: kept })])) return;
    }
  }

  /**
   * The ids among `entries` whose request has ended or is gone (deleted by the sweep: only ended
   * ones are). A request found open is not read again for a while: calls refused at a full limit
   * would otherwise each read every counted record (up to maxOpen), and an entry that outlived its
   * request is rare (the transitions drop theirs). Skipping a check can only over-count, never let
   * a request past the limit.
   */
  private async endedAmong(entries: readonly OpenEntry[], now: number): Promise<string[]> {
    for (const [id, at] of this.#seenOpen) if (at <= now - SEEN_OPEN_MS) this.#seenOpen.delete(id);
    const unchecked = entries.filter((e) => !this.#seenOpen.has(e.id));
    const ended: string[] = [];
    for (let i = 0; i < unchecked.length; i += READ_BATCH) {
      const batch = unchecked.slice(i, i + READ_BATCH);
      const records = await Promise.all(batch.map((e) => this.view.get<ApprovalRecord>(PREFIX + e.id)));
      records.forEach((r, j) => {
        const { id } = batch[j] as OpenEntry;
        if (r === null || !isOpen(r, now)) ended.push(id);
        else this.#seenOpen.set(id, now);
      });
    }
    return ended;
  }

  /** The index of a store written before it existed: every open request, from the records themselves (once). */
  private async openEntries(now: number): Promise<OpenEntry[]> {
    return (await this.list()).filter((r) => isOpen(r, now)).map(openEntry);
  }

  async get(id: string): Promise<ApprovalRecord> {
    if (!APPROVAL_ID_PATTERN.test(id)) throw notFound(id);
    const record = await this.view.get<ApprovalRecord>(PREFIX + id);
    if (!record) throw notFound(id);
    return record;
  }

  /** Every request, newest first. */
  async list(): Promise<ApprovalRecord[]> {
    // Keys relative to the view: `requests/<id>`.
    const keys = await this.view.list(PREFIX);
    const records = await Promise.all(keys.map((key) => this.view.get<ApprovalRecord>(key)));
    return records.filter((r): r is ApprovalRecord => r !== null).sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  /** Applies `transition` to the stored record atomically (retried from the new record on a concurrent change); it may throw to refuse. */
  async update(id: string, transition: (current: ApprovalRecord) => ApprovalRecord): Promise<ApprovalRecord> {
    if (!APPROVAL_ID_PATTERN.test(id)) throw notFound(id);
    return this.view.update<ApprovalRecord, ApprovalRecord>(PREFIX + id, (current) => {
      if (!current) throw notFound(id);
      const next = transition(current);
      return { writes: [this.view.write(PREFIX + id, next)], result: next };
    });
  }

  /**
   * One pass of the retention sweep: deletes every request `expired` says is past retention (it
   * must say so only of ended requests), each by a delete conditional on the bytes read, so a
   * request that changed since (an approval, an execution racing a clock that differs) is left for
   * the next pass, and a request another replica deleted first is not counted. Then drops the
   * index entries of the requests it saw ended.
   */
  async sweep(expired: (record: ApprovalRecord) => boolean, now: number, progress: SweepProgress): Promise<void> {
    const keys = await this.view.list(PREFIX);
    const ended = new Set<string>();
    for (let i = 0; i < keys.length; i += READ_BATCH) {
      const batch = keys.slice(i, i + READ_BATCH);
      const reads = await Promise.all(batch.map((key) => this.view.read<ApprovalRecord>(key)));
      for (const [j, read] of reads.entries()) {
        const record = read.value;
        if (record === null || isOpen(record, now)) continue;
        ended.add(record.id);
        if (expired(record) && await this.view.commit([read], [this.view.remove(batch[j] as string)])) progress.deleted++;
      }
    }
    await this.forget(ended, now);
  }
}
