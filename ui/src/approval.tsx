/** What a protected call's 202 looks like to the person who made it. */
import type { Approval } from './types';

export interface ApprovalAnswer {
  approval: Approval;
}

export const isApprovalAnswer = (status: number, body: unknown): body is ApprovalAnswer =>
  status === 202 && typeof body === 'object' && body !== null && 'approval' in body;

export function AwaitingApproval({ approval }: { approval: Approval }) {
  return (
    <div class="message message-info" role="status">
      <strong>Awaiting approval.</strong> Request <code class="approval-id">{approval.id}</code> needs {approval.required} approval(s)
      before it can run; it expires {new Date(approval.expires_at).toISOString()}. Parameters sha256: <code>{approval.params_sha256}</code>.
      {' '}Once approved, execute it from the <a href="#/approvals">approvals inbox</a>.
    </div>
  );
}
