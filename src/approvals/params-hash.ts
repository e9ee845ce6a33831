/**
 * params_sha256: what an approver states they saw when approving, and what the execution of the
 * request is checked against. SHA-256 over the canonical JSON (keys sorted, no whitespace:
 * src/audit/canonical.ts) of the operation, method, URL (path and query) and body as shown
 * (src/approvals/secret-fields.ts), with a version tag so the form can change without a stored
 * hash ever meaning two things. Pure: the CLI recomputes it from `approval show` to check the
 * server's word before approving.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';

export interface ApprovalParams {
  operation: string;
  method: string;
  url: string;
  /** The body as shown to approvers (null when the request had none). */
  body: unknown;
}

export const PARAMS_HASH_VERSION = 'keyhold-approval-params/v1';

export function paramsSha256(params: ApprovalParams): string {
  const canonical = canonicalJson({ v: PARAMS_HASH_VERSION, operation: params.operation, method: params.method, url: params.url, body: params.body ?? null });
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}
