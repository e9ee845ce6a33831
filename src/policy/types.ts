/** Policies are plain data; policy/evaluate.ts decides with pure functions, no I/O. */
export const CAPABILITIES = [
  'read', 'create', 'update', 'delete', 'list',
  'encrypt', 'decrypt', 'sign', 'verify', 'rotate',
  'deny',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface PolicyRule {
  /**
   * A logical path such as `secrets/app/db`, `keys/payments`, `sys/policies/ops`.
   * `*` at the end matches any suffix (including further '/'); `+` matches exactly one segment.
   */
  path: string;
  capabilities: Capability[];
}

export interface Policy {
  name: string;
  rules: PolicyRule[];
}
