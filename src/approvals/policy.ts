/**
 * Approval policies (Fortanix DSM's quorum policies are the model): for the operations named, on
 * the paths matched, `required` distinct members of `group` must approve before the operation
 * runs. Plain data, validated here; matching is done with the policy evaluator's own path rules
 * (`*` suffix, `+` segment), so a path pattern means exactly what it means in a policy.
 */
import { KeyholdError } from '../errors.js';
import { GROUP_NAME_PATTERN } from '../groups/store.js';
import { compilePolicies, type CompiledPolicies } from '../policy/evaluate.js';
import { parsePolicy, POLICY_NAME_PATTERN } from '../policy/parse.js';
import { expandOperation, knownOperationNames, type ProtectableOperation } from './operations.js';

export const APPROVAL_POLICY_NAME_PATTERN = POLICY_NAME_PATTERN;
export const MAX_REQUIRED_APPROVALS = 32;
export const MAX_POLICY_PATHS = 64;
export const MAX_POLICY_OPERATIONS = 32;

export interface ApprovalPolicy {
  name: string;
  /** Operation names and named sets (operations.ts), as written. */
  operations: string[];
  /** Policy path patterns (`keys/prod-*`, `sys/policies/+`); the operation's policy path must match one. */
  paths: string[];
  /** The group whose members approve. */
  group: string;
  /** How many distinct members must approve (M of the group's N). */
  required: number;
  updatedAt: string;
}

export interface ApprovalPolicyInput {
  operations: string[];
  paths: string[];
  group: string;
  required: number;
}

const invalid = (message: string) => new KeyholdError('ERR_APPROVAL_POLICY_INVALID', message);

/** Validates a policy document (the route's schema already fixed its shape); returns a fresh copy. */
export function parseApprovalPolicy(name: string, input: ApprovalPolicyInput, now = new Date()): ApprovalPolicy {
  if (!APPROVAL_POLICY_NAME_PATTERN.test(name)) throw invalid(`approval policy name ${JSON.stringify(name)}: 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`);
  if (input.operations.length === 0 || input.operations.length > MAX_POLICY_OPERATIONS) throw invalid(`operations: 1 to ${MAX_POLICY_OPERATIONS} names`);
  for (const entry of input.operations) {
    if (!expandOperation(entry)) throw invalid(`operations: unknown operation ${JSON.stringify(entry.slice(0, 80))} (known: ${knownOperationNames().join(', ')})`);
  }
  if (new Set(input.operations).size !== input.operations.length) throw invalid('operations: a name is listed twice');
  if (input.paths.length === 0 || input.paths.length > MAX_POLICY_PATHS) throw invalid(`paths: 1 to ${MAX_POLICY_PATHS} patterns`);
  if (input.paths.some((p) => p.includes('{'))) throw invalid('paths: identity placeholders ({{…}}) have no meaning in an approval policy');
  try {
    // The policy parser's path rules, so a pattern means here what it means in a policy.
    parsePolicy('approval-paths', { rules: input.paths.map((path) => ({ path, capabilities: ['update'] })) });
  } catch (err) {
    throw invalid(`paths: ${(err as Error).message.replace(/^policy "approval-paths"\.rules\[(\d+)\]\.path/, 'pattern $1')}`);
  }
  if (!GROUP_NAME_PATTERN.test(input.group)) throw invalid(`group ${JSON.stringify(input.group.slice(0, 80))}: not a group name`);
  if (!Number.isSafeInteger(input.required) || input.required < 1 || input.required > MAX_REQUIRED_APPROVALS) throw invalid(`required: a whole number from 1 to ${MAX_REQUIRED_APPROVALS}`);
  return { name, operations: [...input.operations], paths: [...input.paths], group: input.group, required: input.required, updatedAt: now.toISOString() };
}

/** A policy ready to match requests: its operations expanded, its paths compiled once. */
export interface CompiledApprovalPolicy {
  policy: ApprovalPolicy;
  operations: ReadonlySet<ProtectableOperation>;
  matches(path: string): boolean;
}

export function compileApprovalPolicy(policy: ApprovalPolicy): CompiledApprovalPolicy {
  const operations = new Set(policy.operations.flatMap((entry) => expandOperation(entry) ?? []));
  const paths: CompiledPolicies = compilePolicies([{ name: 'approval-paths', rules: policy.paths.map((path) => ({ path, capabilities: ['update'] })) }]);
  return { policy, operations, matches: (path) => paths.allowed(path, 'update') };
}
