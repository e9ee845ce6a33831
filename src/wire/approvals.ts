/** Wire shapes of quorum approval (`/v1/sys/approvals/...`): requests, decisions, approval policies. */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

export const APPROVAL_STATE_NAMES = ['pending', 'approved', 'denied', 'cancelled', 'executed', 'expired'] as const;
export const ApprovalStateName = Type.Union(APPROVAL_STATE_NAMES.map((s) => Type.Literal(s)));

export const ApprovalId = Type.String({ pattern: '^apr_[A-Za-z0-9_-]{22}$', description: 'approval request id' });
export const ApprovalIdParams = Closed({ id: ApprovalId });
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'lower-case hex SHA-256' });
/** A TOTP code or an unused recovery code: short-lived or single-use, still never logged or audited. */
const SecondFactorCode = Type.String({ minLength: 1, maxLength: 64, description: 'TOTP code (or an unused recovery code) of the approver' });

export const ApproveBody = Closed({ params_sha256: Sha256Hex, code: SecondFactorCode });
export type ApproveBody = Static<typeof ApproveBody>;
export const DenyBody = Closed({ code: SecondFactorCode, reason: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) });
export type DenyBody = Static<typeof DenyBody>;
/** `GET /v1/sys/approvals`: newest first, at most `limit` (default and maximum below). */
export const APPROVAL_LIST_DEFAULT_LIMIT = 100;
export const APPROVAL_LIST_MAX_LIMIT = 1000;
export const ApprovalListQuery = Closed({
  state: Type.Optional(ApprovalStateName),
  limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: `at most ${APPROVAL_LIST_MAX_LIMIT} (default ${APPROVAL_LIST_DEFAULT_LIMIT})` })),
});

export const ApprovalRuleView = Closed({
  policy: Type.String(), group: Type.String(), required: Type.Integer(),
  /** Distinct members of the group who approved so far. */
  approvals: Type.Integer(),
});
export const DecisionView = Closed({ person: Type.String(), at: Type.String(), reason: Type.Optional(Type.String()) });

const approvalFields = {
  id: Type.String(),
  state: ApprovalStateName,
  operation: Type.String(),
  method: Type.String(),
  url: Type.String(),
  /** The operation's policy path, matched by approval policies. */
  path: Type.String(),
  params_sha256: Type.String(),
  /** The largest `required` of its rules (with one rule, M of M-of-N); see `rules` for each. */
  required: Type.Integer(),
  rules: Type.Array(ApprovalRuleView),
  requester: Type.String(),
  created_at: Type.String(),
  expires_at: Type.String(),
  approvals: Type.Array(DecisionView),
  denials: Type.Array(DecisionView),
  approved_at: Type.Optional(Type.String()),
  denied_at: Type.Optional(Type.String()),
  cancelled_at: Type.Optional(Type.String()),
  executed_at: Type.Optional(Type.String()),
  /** The HTTP status the action answered when it was executed. */
  execution_status: Type.Optional(Type.Integer()),
};

/** One request in full: `body` as approvers see it (credentials as keyed hashes), the input of params_sha256. */
export const ApprovalView = Closed({ ...approvalFields, body: Type.Unknown() });
export type ApprovalView = Static<typeof ApprovalView>;
export const ApprovalSummary = Closed(approvalFields);
export type ApprovalSummary = Static<typeof ApprovalSummary>;
export const ApprovalList = Closed({
  approvals: Type.Array(ApprovalSummary),
  /** Present (true) when more requests matched than `limit`: the newest are shown. */
  truncated: Type.Optional(Type.Boolean()),
});
export type ApprovalList = Static<typeof ApprovalList>;

/** `POST /v1/sys/approvals/sweep`: what one retention pass deleted here (another replica's pass may have deleted others). */
export const ApprovalSweepResult = Closed({ deleted: Type.Integer(), retention_seconds: Type.Integer() });
export type ApprovalSweepResult = Static<typeof ApprovalSweepResult>;

/** The answer of a protected call (HTTP 202): it did not act; a request was opened instead. */
export const ApprovalPending = Closed({
  approval: Closed({
    id: Type.String(), state: Type.Literal('pending'), operation: Type.String(), path: Type.String(), params_sha256: Type.String(),
    required: Type.Integer(), expires_at: Type.String(), rules: Type.Array(ApprovalRuleView),
  }),
});
export type ApprovalPending = Static<typeof ApprovalPending>;

export const ApprovalPolicyParams = Closed({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }) });
export const ApprovalPolicyBody = Closed({
  operations: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 32, description: 'operation names (keys.rotate) or named sets (key-lifecycle)' }),
  paths: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 64, description: 'policy path patterns, as in policies (* suffix, + segment)' }),
  group: Type.String({ minLength: 1, maxLength: 64, description: 'the group whose members approve' }),
  required: Type.Integer({ minimum: 1, maximum: 32, description: 'distinct approvals needed (M of the group\'s N)' }),
});
export type ApprovalPolicyBody = Static<typeof ApprovalPolicyBody>;
export const ApprovalPolicyView = Closed({
  name: Type.String(), operations: Type.Array(Type.String()), paths: Type.Array(Type.String()), group: Type.String(), required: Type.Integer(), updated_at: Type.String(),
});
export type ApprovalPolicyView = Static<typeof ApprovalPolicyView>;
export const ApprovalPolicyList = Closed({ policies: Type.Array(Type.String()) });
export type ApprovalPolicyList = Static<typeof ApprovalPolicyList>;
