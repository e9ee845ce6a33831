/**
 * What an approval policy can protect: the state-changing operations that can destroy or leak keys
 * or hand out power, by their route operation names (src/api/routes/*.ts `operation:`), and named
 * sets of them so a policy can say `key-lifecycle` instead of listing three names. A closed table:
 * an unknown name in a policy is refused (a typo must not leave an operation unprotected), and
 * read-only routes (reads, encrypt, sign…) are never protectable, so they never reach the gate.
 */

export const PROTECTABLE_OPERATIONS = [
  // Keys: a new version; retiring versions, allowing deletion, disabling; deleting (HSM objects destroyed).
  'keys.rotate', 'keys.configure', 'keys.delete',
  // Who may do what.
  'policies.write', 'policies.delete',
  // Groups (src/groups/): membership decides who approves, and a group's policies are conferred on its members.
  'sys.groups.write', 'sys.groups.delete',
  // Operator accounts: a reset sets a password and clears the second factor, so whoever resets an
  // approver's account can become that approver; creating one makes a person a group may already name.
  'sys.operators.create', 'sys.operators.delete', 'sys.operators.reset',
  // Who may log in from Kubernetes, and with which policies.
  'auth.kubernetes.configure', 'auth.kubernetes.write-role', 'auth.kubernetes.delete-role',
  // Single sign-on: the provider decides who is which person. (Turning it off is an incident
  // switch: protectable by name, but not in the `sso-changes` set.)
  'auth.oidc.configure', 'auth.oidc.delete-config',
  // The online rekey: a new barrier root key (`keyhold seal migrate` is offline and needs M recovery shares, itself a quorum).
  'sys.seal.rotate-root',
  // Approval policies themselves (each also protects itself: src/approvals/policy-store.ts).
  'approvals.policies.write', 'approvals.policies.delete',
] as const;

export type ProtectableOperation = (typeof PROTECTABLE_OPERATIONS)[number];

/** Named sets a policy may use in `operations` beside single names. */
export const OPERATION_SETS: Readonly<Record<string, readonly ProtectableOperation[]>> = Object.freeze({
  'key-rotate': ['keys.rotate'],
  // disabled, deletion_allowed and min_decryption_version all go through POST /v1/keys/:name/config.
  'key-config': ['keys.configure'],
  'key-delete': ['keys.delete'],
  'key-lifecycle': ['keys.rotate', 'keys.configure', 'keys.delete'],
  'policy-changes': ['policies.write', 'policies.delete'],
  'group-changes': ['sys.groups.write', 'sys.groups.delete'],
  'operator-changes': ['sys.operators.create', 'sys.operators.delete', 'sys.operators.reset'],
  'kubernetes-changes': ['auth.kubernetes.configure', 'auth.kubernetes.write-role', 'auth.kubernetes.delete-role'],
  'sso-changes': ['auth.oidc.configure'],
  'root-key-rotation': ['sys.seal.rotate-root'],
  'approval-policy-changes': ['approvals.policies.write', 'approvals.policies.delete'],
});

const PROTECTABLE: ReadonlySet<string> = new Set(PROTECTABLE_OPERATIONS);

export function isProtectable(operation: string): operation is ProtectableOperation {
  return PROTECTABLE.has(operation);
}

/** The operations an entry of a policy's `operations` names; undefined for an unknown entry. */
export function expandOperation(entry: string): readonly ProtectableOperation[] | undefined {
  if (isProtectable(entry)) return [entry];
  return Object.hasOwn(OPERATION_SETS, entry) ? OPERATION_SETS[entry] : undefined;
}

/** Every name a policy may use, for error messages and the API description. */
export function knownOperationNames(): string[] {
  return [...PROTECTABLE_OPERATIONS, ...Object.keys(OPERATION_SETS)];
}
