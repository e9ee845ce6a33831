import type { FastifyRequest } from 'fastify';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { EXECUTION_HEADER } from '../../approvals/executions.js';
import type { Approvals } from '../../approvals/service.js';
import { effectiveState, isRequester, type ApprovalRecord } from '../../approvals/state.js';
import type { ApprovalSweep } from '../../approvals/sweep.js';
import { approvalPolicyView, approvalSummary, approvalView } from '../../approvals/view.js';
import { KeyholdError } from '../../errors.js';
import { personCaller } from '../../approvals/people.js';
import {
  APPROVAL_LIST_DEFAULT_LIMIT, APPROVAL_LIST_MAX_LIMIT, ApprovalIdParams, ApprovalList, ApprovalListQuery, ApprovalPolicyBody, ApprovalPolicyList, ApprovalPolicyParams, ApprovalPolicyView,
  ApprovalSweepResult, ApprovalView, ApproveBody, DenyBody,
} from '../../wire/approvals.js';
import { CSRF_HEADER } from '../session.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { withErrors } from '../schemas.js';

export interface ApprovalsApiOptions {
  approvals: Approvals;
  sweep: ApprovalSweep;
}

const REQUESTS_PATH = policyPath(MOUNTS.approvals, 'requests');
const requestPath = (id: string) => `${REQUESTS_PATH}/${id}`;
const approvalPolicyPath = (name: string) => policyPath(MOUNTS.approvalPolicies, name);

/** Facts for the route's audit record (never the body, the code or a token). */
function audited(request: FastifyRequest, record: ApprovalRecord, outcome: string): void {
  const fields = request.keyhold.auditFields;
  fields.approval_id = record.id;
  fields.approval_operation = record.operation;
  fields.approval_outcome = outcome;
}

/** A route that acts on a request as it is stored: any body would be a parameter it does not take. */
function noBody(request: FastifyRequest, what: string): void {
  if (request.body !== undefined) throw new KeyholdError('ERR_BAD_REQUEST', `${what} takes no body: the approved parameters run exactly as they were stored`);
}

/**
 * The credentials of the execute call, for the re-dispatched request: the same person's token
 * (the action is authorised again, as the requester, now), from the Authorization header or the
 * console's session cookie with its CSRF token.
 */
function forwardedCredentials(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  const { authorization, cookie } = request.headers;
  const csrf = request.headers[CSRF_HEADER];
  if (authorization !== undefined) headers.authorization = authorization;
  else {
    if (cookie !== undefined) headers.cookie = cookie;
    if (typeof csrf === 'string') headers[CSRF_HEADER] = csrf;
  }
  return headers;
}

/**
 * Quorum approval (src/approvals/): approval policies, and the requests protected calls open.
 * Reading needs `list`/`read` on sys/approvals/requests[/<id>] (the requester may always read
 * their own); approving and denying need no capability but membership of the rule's group, an
 * operator account and its second factor; cancelling and executing are the requester's. Running
 * the retention sweep now needs `delete` on sys/approvals/requests.
 */
export const approvalsApi: ApiPlugin<ApprovalsApiOptions> = async (app, { approvals, sweep }) => {
  route(app, {
    method: 'GET', url: '/v1/sys/approvals', operation: 'approvals.list',
    schema: {
      tags: ['approvals'], summary: `List approval requests, newest first, optionally by state; at most \`limit\` (default ${APPROVAL_LIST_DEFAULT_LIMIT}, at most ${APPROVAL_LIST_MAX_LIMIT}), \`truncated\` when more matched`,
      querystring: ApprovalListQuery, response: withErrors({ 200: ApprovalList }),
    },
    authorize: () => [[REQUESTS_PATH, 'list']],
    handler: async (req) => {
      const limit = Number(req.query.limit ?? APPROVAL_LIST_DEFAULT_LIMIT);
      if (limit > APPROVAL_LIST_MAX_LIMIT) throw new KeyholdError('ERR_BAD_REQUEST', `limit must be at most ${APPROVAL_LIST_MAX_LIMIT}`);
      const now = approvals.now();
      const { state } = req.query;
      const matching = (await approvals.requests.list()).filter((r) => state === undefined || effectiveState(r, now) === state);
      return { approvals: matching.slice(0, limit).map((r) => approvalSummary(r, now)), ...(matching.length > limit ? { truncated: true } : {}) };
    },
  });

  route(app, {
    method: 'POST', url: '/v1/sys/approvals/sweep', operation: 'approvals.sweep',
    schema: {
      tags: ['approvals'], summary: 'Run the retention sweep now on this replica: deletes requests that ended (denied, cancelled, executed, expired) longer than approvals.retentionSeconds ago',
      response: withErrors({ 200: ApprovalSweepResult }),
    },
    // Deletes only what the timer would delete anyway, a little sooner.
    authorize: () => [[REQUESTS_PATH, 'delete']],
    handler: async (req) => {
      noBody(req, 'sweep');
      const { deleted } = await sweep.pass('api');
      return { deleted, retention_seconds: sweep.retentionSeconds };
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/approvals/:id', operation: 'approvals.read',
    schema: { tags: ['approvals'], summary: 'An approval request: operation, method, URL, body (credentials as keyed hashes) and params_sha256', params: ApprovalIdParams, response: withErrors({ 200: ApprovalView }) },
    authorize: async (req) => {
      // The requester follows their own request without a capability.
      const caller = personCaller(req.keyhold.token);
      if (caller !== null) {
        const record = await approvals.requests.get(req.params.id).catch(() => undefined);
        if (record && isRequester(record, caller)) return [];
      }
      return [[requestPath(req.params.id), 'read']];
    },
    handler: async (req) => {
      const record = await approvals.requests.get(req.params.id);
      req.keyhold.auditFields.approval_id = record.id;
      return approvalView(record, approvals.now(), (op, body) => approvals.shown(op, body));
    },
  });

  route(app, {
    // secretBody: the body holds a second-factor code, so not even its HMAC goes into the audit record.
    method: 'POST', url: '/v1/sys/approvals/:id/approve', operation: 'approvals.approve', secretBody: true,
    schema: { tags: ['approvals'], summary: 'Approve, stating the params_sha256 you saw, with your second factor', params: ApprovalIdParams, body: ApproveBody, response: withErrors({ 200: ApprovalView }) },
    authorize: () => [],
    handler: async (req) => {
      req.keyhold.auditFields.approval_id = req.params.id;
      const record = await approvals.approve(req.params.id, req.keyhold.token, req.body.params_sha256, req.body.code);
      audited(req, record, record.state === 'approved' ? 'approved' : 'approval-recorded');
      return approvalView(record, approvals.now(), (op, body) => approvals.shown(op, body));
    },
  });

  route(app, {
    method: 'POST', url: '/v1/sys/approvals/:id/deny', operation: 'approvals.deny', secretBody: true,
    schema: { tags: ['approvals'], summary: 'Deny, with your second factor: the request is over', params: ApprovalIdParams, body: DenyBody, response: withErrors({ 200: ApprovalView }) },
    authorize: () => [],
    handler: async (req) => {
      req.keyhold.auditFields.approval_id = req.params.id;
      const record = await approvals.deny(req.params.id, req.keyhold.token, req.body.code, req.body.reason);
      audited(req, record, 'denied');
      return approvalView(record, approvals.now(), (op, body) => approvals.shown(op, body));
    },
  });

  route(app, {
    method: 'POST', url: '/v1/sys/approvals/:id/cancel', operation: 'approvals.cancel',
    schema: { tags: ['approvals'], summary: 'Cancel your own pending or approved request', params: ApprovalIdParams, response: withErrors({ 200: ApprovalView }) },
    authorize: () => [],
    handler: async (req) => {
      noBody(req, 'cancel');
      req.keyhold.auditFields.approval_id = req.params.id;
      const record = await approvals.cancel(req.params.id, req.keyhold.token);
      audited(req, record, 'cancelled');
      return approvalView(record, approvals.now(), (op, body) => approvals.shown(op, body));
    },
  });

  route(app, {
    method: 'POST', url: '/v1/sys/approvals/:id/execute', operation: 'approvals.execute',
    schema: { tags: ['approvals'], summary: 'Run your approved request, once, with exactly the approved parameters; the answer is the action\'s own', params: ApprovalIdParams },
    authorize: () => [],
    handler: async (req, reply) => {
      noBody(req, 'execute');
      req.keyhold.auditFields.approval_id = req.params.id;
      const { record, marker } = await approvals.prepareExecution(req.params.id, req.keyhold.token);
      // The stored request, re-dispatched as the requester: authenticated, authorised and audited
      // again; the gate commits approved → executed just before the action (approval-gate.ts).
      let status = 500;
      let answer: Awaited<ReturnType<typeof app.inject>> | undefined;
      try {
        answer = await app.inject({
          method: record.method as 'POST',
          url: record.url,
          headers: {
            ...forwardedCredentials(req),
            [EXECUTION_HEADER]: marker,
            ...(record.body !== null ? { 'content-type': 'application/json' } : {}),
          },
          ...(record.body !== null ? { payload: JSON.stringify(record.body) } : {}),
        });
        status = answer.statusCode;
      } finally {
        // Before this route's own answer (its audit record is written as it is sent).
        const ran = await approvals.finishExecution(marker, status);
        audited(req, record, ran ? 'executed' : 'not-executed');
        req.keyhold.auditFields.approval_execution_status = String(status);
      }
      const contentType = answer.headers['content-type'];
      if (typeof contentType === 'string') void reply.header('content-type', contentType);
      const retryAfter = answer.headers['retry-after'];
      if (typeof retryAfter === 'string') void reply.header('retry-after', retryAfter);
      return reply.code(status).send(answer.payload === '' ? undefined : answer.payload);
    },
  });

  listRoute(app, {
    url: '/v1/sys/approvals/policies', operation: 'approvals.policies.list', tag: 'approvals', summary: 'List approval policy names', schema: ApprovalPolicyList,
    policyPath: policyPath(MOUNTS.approvalPolicies),
    list: async () => ({ policies: await approvals.policies.list() }),
  });

  route(app, {
    method: 'PUT', url: '/v1/sys/approvals/policies/:name', operation: 'approvals.policies.write',
    schema: {
      tags: ['approvals'], summary: 'Create or replace an approval policy (changing one needs its own quorum)', params: ApprovalPolicyParams, body: ApprovalPolicyBody,
      response: withErrors({ 200: ApprovalPolicyView }),
    },
    authorize: (req) => [[approvalPolicyPath(req.params.name), 'update']],
    handler: async (req) => {
      req.keyhold.auditFields.approval_policy = req.params.name;
      return approvalPolicyView(await approvals.putPolicy(req.params.name, req.body));
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/approvals/policies/:name', operation: 'approvals.policies.read',
    schema: { tags: ['approvals'], summary: 'Read an approval policy', params: ApprovalPolicyParams, response: withErrors({ 200: ApprovalPolicyView }) },
    authorize: (req) => [[approvalPolicyPath(req.params.name), 'read']],
    handler: async (req) => approvalPolicyView(await approvals.policies.get(req.params.name)),
  });

  deleteRoute(app, {
    url: '/v1/sys/approvals/policies/:name', operation: 'approvals.policies.delete', tag: 'approvals', summary: 'Delete an approval policy (needs its own quorum)', params: ApprovalPolicyParams,
    authorize: (req) => [[approvalPolicyPath(req.params.name), 'delete']],
    remove: async (req) => {
      req.keyhold.auditFields.approval_policy = req.params.name;
      await approvals.policies.get(req.params.name);
      await approvals.policies.delete(req.params.name);
    },
  });
};
