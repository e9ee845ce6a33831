/**
 * Approval requests in the barrier (`sys/approvals/requests/<id>`). Every change is a
 * compare-and-set of the whole record (BarrierView.update): a transition computed from a record
 * another approver or execution changed meanwhile is recomputed from the new one, so two approvals
 * both count and two executions cannot both begin.
 */
import { randomBytes } from 'node:crypto';
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import type { ApprovalRecord } from './state.js';

/** `apr_` + 128 random bits (base64url): unguessable, so an id alone grants nothing and reveals nothing. */
export const APPROVAL_ID_PATTERN = /^apr_[A-Za-z0-9_-]{22}$/;
const PREFIX = 'requests/';

export const newApprovalId = (): string => `apr_${randomBytes(16).toString('base64url')}`;

const notFound = (id: string) => new KeyholdError('ERR_APPROVAL_NOT_FOUND', `approval request ${id} does not exist`);

export class ApprovalRequestStore {
  constructor(private readonly view: BarrierView) {}

  async create(record: ApprovalRecord): Promise<void> {
    await this.view.put(PREFIX + record.id, record);
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
}
