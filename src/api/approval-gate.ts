/**
 * Quorum approval in the route guard (server.ts): after authorisation and the write-ahead audit
 * record, a call to an operation some approval policy protects does not run; it opens an approval
 * request and answers 202. The guard calls `approvals.protects(operation)` first, synchronously
 * (a set look-up), so unprotected routes never come here and pay nothing more.
 *
 * The one exception is the execution of an approved request (routes/approvals.ts), re-dispatched
 * in-process with a single-use marker that only this process issued (src/approvals/executions.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Approvals } from '../approvals/service.js';
import { EXECUTION_HEADER } from '../approvals/executions.js';
import { pendingView } from '../approvals/view.js';
import { isKeyholdError } from '../errors.js';

/** The policy path the route authorised on (its first requirement): what approval policies match. */
async function policyPathOf(request: FastifyRequest): Promise<string> {
  const required = request.keyhold.route.authorize?.(request);
  const list = required instanceof Promise ? await required : required;
  return list?.[0]?.[0] ?? '';
}

export function approvalGate(approvals: Approvals): (request: FastifyRequest, reply: FastifyReply, run: () => unknown) => Promise<unknown> {
  return async (request, reply, run) => {
    await approvals.fresh();
    const { operation } = request.keyhold.route;
    const fields = request.keyhold.auditFields;
    const marker = request.headers[EXECUTION_HEADER];
    if (marker !== undefined) {
      const execution = await approvals.admitExecution(typeof marker === 'string' ? marker : '', {
        token: request.keyhold.token, operation, method: request.method, url: request.url, path: '', body: request.body,
      });
      fields.approval_id = execution.id;
      fields.approval_outcome = 'executing';
      return run();
    }
    // On a store shared between replicas the set was only a guess (every protectable operation); now it is current.
    if (!approvals.protects(operation)) return run();
    const record = await approvals.open({
      token: request.keyhold.token, operation, method: request.method, url: request.url, path: await policyPathOf(request), body: request.body,
    }).catch((err: unknown) => {
      // Refused for too many open requests (429, nothing stored): the outcome record says which limit.
      if (isKeyholdError(err, 'ERR_APPROVAL_LIMIT')) {
        fields.approval_operation = operation;
        fields.approval_outcome = 'refused-limit';
        fields.approval_limit = String(err.details?.limit);
      }
      throw err;
    });
    if (!record) return run();
    fields.approval_id = record.id;
    fields.approval_operation = record.operation;
    fields.approval_outcome = 'pending';
    fields.approval_params_sha256 = record.paramsSha256;
    return reply.code(202).send(pendingView(record));
  };
}
