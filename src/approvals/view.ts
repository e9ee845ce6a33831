/** Approval records as the API shows them (src/wire/approvals.ts). */
import type { ApprovalPending, ApprovalPolicyView, ApprovalSummary, ApprovalView } from '../wire/approvals.js';
import type { ApprovalPolicy } from './policy.js';
import { approvalsFor, effectiveState, type ApprovalRecord } from './state.js';

function rulesView(record: ApprovalRecord) {
  return record.rules.map((rule, i) => ({ policy: rule.policy, group: rule.group, required: rule.required, approvals: approvalsFor(record, i) }));
}

const requiredOf = (record: ApprovalRecord) => Math.max(...record.rules.map((r) => r.required));

export function approvalSummary(record: ApprovalRecord, now: number): ApprovalSummary {
  return {
    id: record.id,
    state: effectiveState(record, now),
    operation: record.operation,
    method: record.method,
    url: record.url,
    path: record.path,
    params_sha256: record.paramsSha256,
    required: requiredOf(record),
    rules: rulesView(record),
    requester: record.requester,
    created_at: record.createdAt,
    expires_at: record.expiresAt,
    approvals: record.approvals.map((d) => ({ person: d.person, at: d.at })),
    denials: record.denials.map((d) => ({ person: d.person, at: d.at, ...(d.reason ? { reason: d.reason } : {}) })),
    ...(record.approvedAt ? { approved_at: record.approvedAt } : {}),
    ...(record.deniedAt ? { denied_at: record.deniedAt } : {}),
    ...(record.cancelledAt ? { cancelled_at: record.cancelledAt } : {}),
    ...(record.executedAt ? { executed_at: record.executedAt } : {}),
    ...(record.executionStatus !== undefined ? { execution_status: record.executionStatus } : {}),
  };
}

/** With the body as approvers see it (`shown`: credentials as keyed hashes). */
export function approvalView(record: ApprovalRecord, now: number, shown: (operation: string, body: unknown) => unknown): ApprovalView {
  return { ...approvalSummary(record, now), body: shown(record.operation, record.body) };
}

/** The 202 answer of a protected call. */
export function pendingView(record: ApprovalRecord): ApprovalPending {
  return {
    approval: {
      id: record.id, state: 'pending', operation: record.operation, path: record.path, params_sha256: record.paramsSha256,
      required: requiredOf(record), expires_at: record.expiresAt, rules: rulesView(record),
    },
  };
}

export function approvalPolicyView(policy: ApprovalPolicy): ApprovalPolicyView {
  return { name: policy.name, operations: policy.operations, paths: policy.paths, group: policy.group, required: policy.required, updated_at: policy.updatedAt };
}
