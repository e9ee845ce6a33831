/**
 * Where each domain lives, once: the storage prefix of its barrier view and the root of the
 * policy paths that guard it. A route's policy path and the store's record path are both derived
 * from the same mount, so renaming one cannot silently leave the other behind.
 *
 * Within a mount, a record's view-relative key and its policy path's tail are the same string
 * (key `prod` ↔ policy `keys/prod` ↔ record `keys/prod`; role `web` ↔ `sys/auth/kubernetes/roles/web`
 * ↔ `auth/kubernetes/roles/web`), except secrets, whose one policy path covers two records
 * (src/secrets/types.ts).
 *
 * The storage prefixes are those of stores written before views existed: they cannot change
 * without a migration.
 */
export interface Mount {
  /** Storage prefix of the domain's view (a logical path prefix ending in '/'). */
  readonly storage: string;
  /** Policy path of the domain as a whole (list capability); its records are `<policy>/<key>`. */
  readonly policy: string;
}

export const MOUNTS = {
  keys: { storage: 'keys/', policy: 'keys' },
  secrets: { storage: 'secrets/', policy: 'secrets' },
  policies: { storage: 'sys/policies/', policy: 'sys/policies' },
  audit: { storage: 'sys/audit/', policy: 'sys/audit' },
  kubernetes: { storage: 'auth/kubernetes/', policy: 'sys/auth/kubernetes' },
  /** OIDC single sign-on: its configuration (`config`, with the client secret) and the pending logins' flows (`flows/…`, src/identity/oidc/flows.ts). */
  oidc: { storage: 'auth/oidc/', policy: 'sys/auth/oidc' },
  tokens: { storage: 'sys/tokens/', policy: 'sys/tokens' },
  tokenAccessors: { storage: 'sys/token-accessors/', policy: 'sys/tokens/accessors' },
  /** Indexes without a policy path of their own: only the token store reads them. */
  tokenChildren: { storage: 'sys/token-children/', policy: 'sys/tokens' },
  tokenExpiry: { storage: 'sys/token-expiry/', policy: 'sys/tokens' },
  /** The seal's records inside the barrier: the recovery key R, a pending seal migration (the in-memory wrap key is sys/material-wrap-key, keys/protection/wrapper.ts). */
  seal: { storage: 'sys/seal/', policy: 'sys/seal' },
  /** A pod's tokens, written with each token (so owned by the token store too) and read by Kubernetes login. */
  podTokens: { storage: 'auth/kubernetes/pod-tokens/', policy: 'sys/auth/kubernetes' },
  /** Approval policies (src/approvals/policy-store.ts): record `<name>` ↔ policy path `sys/approvals/policies/<name>`. */
  approvalPolicies: { storage: 'sys/approval-policies/', policy: 'sys/approvals/policies' },
  /** Approval requests `requests/<id>` ↔ `sys/approvals/requests/<id>`, and the approval policies' generation (src/approvals/). */
  approvals: { storage: 'sys/approvals/', policy: 'sys/approvals' },
  /** Operator accounts (people): password hash, TOTP secret, recovery-code hashes, lockout state. Records are `accounts/<name>` (src/operators/store.ts). */
  operators: { storage: 'sys/operators/', policy: 'sys/operators' },
  /** An operator's live login tokens (`<name>/<token id>`), written and deleted with each token, so a reset or deletion can revoke them. */
  operatorTokens: { storage: 'sys/operator-tokens/', policy: 'sys/operators' },
  /** Groups: members (operators), SSO group names, and the policies they confer. */
  groups: { storage: 'sys/groups/', policy: 'sys/groups' },
} as const satisfies Record<string, Mount>;

/** The policy path of record `key` of a mount (its list path when `key` is omitted). */
export function policyPath(mount: Mount, key?: string): string {
  return key === undefined ? mount.policy : `${mount.policy}/${key}`;
}
