/**
 * Approval policies in the barrier (`sys/approval-policies/<name>`), and the in-memory snapshot
 * the route guard decides from. The guard runs on every state-changing request, so deciding that
 * an operation is not protected must cost a set look-up, no await: `protects` answers from the
 * snapshot. The snapshot is rebuilt whenever the policies' generation (one record, bumped in the
 * same commit as every policy write) moves: at once after a write here, and, on a store shared
 * between replicas, before every decision on a protectable operation (`fresh`, which reads the
 * generation through the feed-synced cache), since another replica may have written a policy.
 */
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { isProtectable, type ProtectableOperation } from './operations.js';
import { compileApprovalPolicy, parseApprovalPolicy, type ApprovalPolicy, type ApprovalPolicyInput, type CompiledApprovalPolicy } from './policy.js';

/** The generation record, in the approvals view. */
const GENERATION_KEY = 'policies-generation';
const MAX_ATTEMPTS = 32;

interface Generation { generation: number }

/** One policy's rule as a request records it when it is created (it keeps that rule, whatever later happens to the policy). */
export interface ApprovalRule {
  policy: string;
  group: string;
  required: number;
}

interface Snapshot {
  generation: number;
  policies: ReadonlyMap<string, CompiledApprovalPolicy>;
  /** Operations some policy protects (approval-policy and group changes as soon as any policy exists: each protects itself and its group). */
  operations: ReadonlySet<string>;
}

const EMPTY: Snapshot = { generation: -1, policies: new Map(), operations: new Set() };
/** The policy path prefix of approval policies, whose own records protect themselves. */
const OWN_PATH_PREFIX = 'sys/approvals/policies/';
/**
 * The policy path prefix of groups: the group a policy names decides who approves, so whoever
 * could rewrite or delete (and re-make) it would hold the policy's quorum. It is protected by the
 * policy as the policy itself is.
 */
const GROUP_PATH_PREFIX = 'sys/groups/';
/**
 * Likewise the operator accounts of its group's members: a reset sets the password and clears the
 * second factor, and deleting an account then creating one of the same name makes a new person the
 * group names; either way whoever changes accounts becomes an approver (service.ts `open`).
 */
export const ACCOUNT_PATH_PREFIX = 'sys/operators/';
export const ACCOUNT_OPERATIONS: ReadonlySet<string> = new Set(['sys.operators.create', 'sys.operators.delete', 'sys.operators.reset']);
const SELF_PROTECTED = ['approvals.policies.write', 'approvals.policies.delete', 'sys.groups.write', 'sys.groups.delete', ...ACCOUNT_OPERATIONS];

function snapshotOf(generation: number, policies: Iterable<ApprovalPolicy>): Snapshot {
  const compiled = new Map<string, CompiledApprovalPolicy>();
  const operations = new Set<string>();
  for (const policy of policies) {
    const c = compileApprovalPolicy(policy);
    compiled.set(policy.name, c);
    for (const op of c.operations) operations.add(op);
    for (const op of SELF_PROTECTED) operations.add(op);
  }
  return { generation, policies: compiled, operations };
}

export class ApprovalPolicyStore {
  #snapshot: Snapshot = EMPTY;

  /**
   * `policies`: the approval policies' view; `approvals`: the approvals view (the generation);
   * `shared`: the store is shared with other processes (PostgreSQL replicas).
   */
  constructor(private readonly policies: BarrierView, private readonly approvals: BarrierView, private readonly shared: boolean) {}

  /** Reads every policy (at start-up, and when the generation moved). */
  async load(): Promise<void> {
    const generation = (await this.approvals.get<Generation>(GENERATION_KEY))?.generation ?? 0;
    const names = await this.policies.list();
    const records = await Promise.all(names.map((name) => this.policies.get<ApprovalPolicy>(name)));
    this.install(snapshotOf(generation, records.filter((p): p is ApprovalPolicy => p !== null)));
  }

  /** A newer snapshot only: a slow reload must not put back what a later one replaced. */
  private install(next: Snapshot): void {
    if (next.generation >= this.#snapshot.generation) this.#snapshot = next;
  }

  /**
   * Whether the guard must look closer at `operation` (synchronous: the per-request path). On a
   * shared store every protectable operation is looked at (after `fresh`), since the snapshot may
   * be behind another replica's write.
   */
  protects(operation: string): boolean {
    return this.shared ? isProtectable(operation) : this.#snapshot.operations.has(operation);
  }

  /** Brings the snapshot up to date with writes made by other replicas (a no-op on a store this process owns). */
  async fresh(): Promise<void> {
    if (!this.shared) return;
    const generation = (await this.approvals.cached<Generation>(GENERATION_KEY, true))?.generation ?? 0;
    if (generation !== this.#snapshot.generation) await this.load();
  }

  /**
   * The rules a request for `operation` on policy path `path` needs, sorted by policy name: every
   * policy naming the operation whose paths match, and for a change to approval policy P, P itself
   * (a policy protects itself, whatever operations it names), and for a change to group G, every
   * policy naming G as its approvers.
   */
  rulesFor(operation: string, path: string): ApprovalRule[] {
    const { policies } = this.#snapshot;
    const matched = new Map<string, ApprovalPolicy>();
    for (const c of policies.values()) {
      if (c.operations.has(operation as ProtectableOperation) && c.matches(path)) matched.set(c.policy.name, c.policy);
    }
    if ((operation === 'approvals.policies.write' || operation === 'approvals.policies.delete') && path.startsWith(OWN_PATH_PREFIX)) {
      const own = policies.get(path.slice(OWN_PATH_PREFIX.length));
      if (own) matched.set(own.policy.name, own.policy);
    }
    if ((operation === 'sys.groups.write' || operation === 'sys.groups.delete') && path.startsWith(GROUP_PATH_PREFIX)) {
      const group = path.slice(GROUP_PATH_PREFIX.length);
      for (const c of policies.values()) if (c.policy.group === group) matched.set(c.policy.name, c.policy);
    }
    return [...matched.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((p) => ({ policy: p.name, group: p.group, required: p.required }));
  }

  /** Every policy of the current snapshot. */
  current(): ApprovalPolicy[] {
    return [...this.#snapshot.policies.values()].map((c) => c.policy);
  }

  async get(name: string): Promise<ApprovalPolicy> {
    const policy = await this.policies.get<ApprovalPolicy>(name);
    if (!policy) throw new KeyholdError('ERR_APPROVAL_POLICY_NOT_FOUND', `approval policy "${name}" does not exist`);
    return policy;
  }

  list(): Promise<string[]> {
    return this.policies.list();
  }

  async put(name: string, input: ApprovalPolicyInput): Promise<ApprovalPolicy> {
    const policy = parseApprovalPolicy(name, input);
    await this.commit(name, policy);
    return policy;
  }

  async delete(name: string): Promise<void> {
    await this.commit(name, null);
  }

  /** Writes (or deletes) one policy and bumps the generation in one commit, then installs the new snapshot. */
  private async commit(name: string, policy: ApprovalPolicy | null): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await this.approvals.read<Generation>(GENERATION_KEY);
      const previous = read.value?.generation ?? 0;
      const next = previous + 1;
      const write = policy ? this.policies.write(name, policy) : this.policies.remove(name);
      if (!(await this.approvals.commit([read], [write, this.approvals.write(GENERATION_KEY, { generation: next } satisfies Generation)]))) continue;
      const current = this.#snapshot;
      if (current.generation === previous) {
        // The snapshot was current: apply the change without reading everything again.
        const policies = new Map([...current.policies].map(([n, c]) => [n, c.policy]));
        if (policy) policies.set(name, policy);
        else policies.delete(name);
        this.install(snapshotOf(next, policies.values()));
      } else {
        await this.load();
      }
      return;
    }
    throw new KeyholdError('ERR_CONFLICT', 'too many concurrent approval-policy writes; retry');
  }
}
