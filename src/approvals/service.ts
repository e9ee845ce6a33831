/**
 * Quorum approval: the one object the route guard and the approval routes use. It opens a request
 * for a protected call, records approvals and denials (each approver re-authenticated with their
 * second factor), cancels, and hands out the single execution of an approved request.
 */
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { TokenRecord } from '../identity/tokens.js';
import { Executions, type PendingExecution } from './executions.js';
import { DEFAULT_APPROVAL_LIMITS, type ApprovalLimits } from './open-index.js';
import { paramsSha256 } from './params-hash.js';
import { approverOf, callerPerson } from './people.js';
import type { ApprovalPolicy, ApprovalPolicyInput } from './policy.js';
import { ACCOUNT_OPERATIONS, ACCOUNT_PATH_PREFIX, type ApprovalPolicyStore, type ApprovalRule } from './policy-store.js';
import { newApprovalId, type ApprovalRequestStore } from './request-store.js';
import { hasSecretFields, shownBody, type SecretMac } from './secret-fields.js';
import { approve, assertCanDecide, assertExecutable, assertRequester, beginExecution, cancel, deny, type ApprovalRecord, type CurrentMembers } from './state.js';

/** What approvals need of the groups store (src/groups/). */
export interface GroupMembers {
  /** Operator names of the group's members (none for a group that does not exist). */
  membersOf(group: string): Promise<string[]>;
}

/** What approvals need of the operator store (src/operators/). */
export interface SecondFactorCheck {
  /** Throws ERR_SECOND_FACTOR_INVALID (TOTP replay refused; counts toward the account's lockout). */
  verifySecondFactor(name: string, code: string): Promise<void>;
}

export const DEFAULT_APPROVAL_TTL_SECONDS = 24 * 3600;

export interface ApprovalsOptions {
  policies: ApprovalPolicyStore;
  requests: ApprovalRequestStore;
  groups: GroupMembers;
  operators: SecondFactorCheck;
  ttlSeconds?: number;
  /** Open requests per person and in all (default DEFAULT_APPROVAL_LIMITS). */
  limits?: ApprovalLimits;
  /** Keyed hash of credential fields (secret-fields.ts). */
  mac: SecretMac;
  now?: () => number;
}

/** What the guard knows of a protected call. */
export interface ProtectedCall {
  token: TokenRecord | null;
  operation: string;
  method: string;
  url: string;
  path: string;
  body: unknown;
}

export class Approvals {
  readonly policies: ApprovalPolicyStore;
  readonly requests: ApprovalRequestStore;
  readonly ttlSeconds: number;
  readonly limits: ApprovalLimits;
  readonly #executions = new Executions();
  readonly #groups: GroupMembers;
  readonly #operators: SecondFactorCheck;
  readonly #mac: SecretMac;
  readonly #now: () => number;

  constructor(options: ApprovalsOptions) {
    this.policies = options.policies;
    this.requests = options.requests;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_APPROVAL_TTL_SECONDS;
    this.limits = options.limits ?? DEFAULT_APPROVAL_LIMITS;
    this.#groups = options.groups;
    this.#operators = options.operators;
    this.#mac = options.mac;
    this.#now = options.now ?? Date.now;
  }

  now(): number {
    return this.#now();
  }

  /** Per request, synchronous: whether the guard must hand this operation to `open` (policy-store.ts). */
  protects(operation: string): boolean {
    return this.policies.protects(operation);
  }

  /** See ApprovalPolicyStore.fresh. */
  fresh(): Promise<void> {
    return this.policies.fresh();
  }

  /** The body as approvers see it (credentials as keyed hashes). */
  shown(operation: string, body: unknown): unknown {
    return shownBody(operation, body, this.#mac);
  }

  paramsHash(operation: string, method: string, url: string, body: unknown): string {
    return paramsSha256({ operation, method, url, body: this.shown(operation, body ?? null) });
  }

  /**
   * A protected call: undefined when no approval policy covers it (it runs), else the new pending
   * request (it does not run). Only a person can request, and only while under the limits on open
   * requests (ERR_APPROVAL_LIMIT: nothing is stored).
   */
  async open(call: ProtectedCall): Promise<ApprovalRecord | undefined> {
    let rules = this.policies.rulesFor(call.operation, call.path);
    if (ACCOUNT_OPERATIONS.has(call.operation) && call.path.startsWith(ACCOUNT_PATH_PREFIX)) {
      rules = await this.withAccountRules(rules, call.path.slice(ACCOUNT_PATH_PREFIX.length));
    }
    if (rules.length === 0) return undefined;
    const requester = callerPerson(call.token, `"${call.operation}" needs approval, and requesting it`);
    const now = this.#now();
    const body = call.body ?? null;
    const record: ApprovalRecord = {
      id: newApprovalId(),
      requester: requester.person,
      ...(requester.operator !== undefined ? { requesterOperator: requester.operator } : {}),
      operation: call.operation,
      method: call.method,
      url: call.url,
      path: call.path,
      body,
      paramsSha256: this.paramsHash(call.operation, call.method, call.url, body),
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.ttlSeconds * 1000).toISOString(),
      rules,
      state: 'pending',
      approvals: [],
      denials: [],
    };
    await this.requests.create(record, this.limits, now);
    return record;
  }

  /**
   * A change to operator account `name` (create, delete, reset) also needs the quorum of every
   * policy whose group names `name`: that account is one of its approvers (policy-store.ts).
   */
  private async withAccountRules(rules: ApprovalRule[], name: string): Promise<ApprovalRule[]> {
    const matched = new Map(rules.map((r) => [r.policy, r]));
    for (const policy of this.policies.current()) {
      if (!matched.has(policy.name) && (await this.#groups.membersOf(policy.group)).includes(name)) {
        matched.set(policy.name, { policy: policy.name, group: policy.group, required: policy.required });
      }
    }
    return [...matched.values()].sort((a, b) => (a.policy < b.policy ? -1 : 1));
  }

  /** The persons in each of the record's rules' groups now (a group deleted since has none). */
  private async currentMembers(record: ApprovalRecord): Promise<CurrentMembers> {
    const members: Set<string>[] = [];
    for (const rule of record.rules) members.push(new Set((await this.#groups.membersOf(rule.group)).map((name) => `operator:${name}`)));
    return members;
  }

  /** Indexes of the rules whose group has `operator` as a member now. */
  private static memberRules(members: CurrentMembers, operator: string): number[] {
    const person = `operator:${operator}`;
    return members.flatMap((set, i) => (set.has(person) ? [i] : []));
  }

  /**
   * An approval: every rule the approver cannot break is checked first (state, not the requester,
   * a member, not decided yet, the hash they saw is the request's), then their second factor, then
   * the approval is added by compare-and-set (rechecked against the record as it is then).
   */
  async approve(id: string, token: TokenRecord | null, statedSha256: string, code: string): Promise<ApprovalRecord> {
    const approver = approverOf(token);
    const record = await this.requests.get(id);
    const members = await this.currentMembers(record);
    const memberOf = Approvals.memberRules(members, approver.operator);
    assertCanDecide(record, approver, memberOf, this.#now());
    if (statedSha256 !== record.paramsSha256) {
      throw new KeyholdError('ERR_APPROVAL_PARAMS_MISMATCH', 'params_sha256 is not the hash of this request\'s parameters: look at the request again (keyhold approval show) before approving');
    }
    await this.#operators.verifySecondFactor(approver.operator, code);
    return this.requests.update(id, (current) => approve(current, approver, memberOf, this.#now(), members));
  }

  async deny(id: string, token: TokenRecord | null, code: string, reason?: string): Promise<ApprovalRecord> {
    const approver = approverOf(token);
    const record = await this.requests.get(id);
    const memberOf = Approvals.memberRules(await this.currentMembers(record), approver.operator);
    assertCanDecide(record, approver, memberOf, this.#now());
    await this.#operators.verifySecondFactor(approver.operator, code);
    return this.ended(await this.requests.update(id, (current) => this.scrubbed(deny(current, approver, memberOf, this.#now(), reason))));
  }

  async cancel(id: string, token: TokenRecord | null): Promise<ApprovalRecord> {
    const caller = callerPerson(token, 'cancelling a request');
    return this.ended(await this.requests.update(id, (current) => this.scrubbed(cancel(current, caller, this.#now()))));
  }

  /**
   * A request that just ended frees its place under the limits at once. Best effort: the
   * transition is committed whatever happens here, and an entry left behind is checked against
   * its record when a limit is next reached (open-index.ts).
   */
  private async ended(record: ApprovalRecord): Promise<ApprovalRecord> {
    await this.requests.forget(new Set([record.id]), this.#now()).catch(() => undefined);
    return record;
  }

  /**
   * The requester's execute call: the request must be theirs and approved (checked here so that a
   * refusal is clear), and they get the marker that lets the re-dispatched request through the
   * gate once. approved → executed is committed by the gate (`admitExecution`), after the
   * re-dispatched request was authenticated, authorised and recorded, right before the action:
   * a re-dispatch refused before it (the requester's token lost the right meanwhile) leaves the
   * request approved, to be executed once that is fixed.
   */
  async prepareExecution(id: string, token: TokenRecord | null): Promise<{ record: ApprovalRecord; marker: string }> {
    const caller = callerPerson(token, 'executing a request');
    const record = await this.requests.get(id);
    assertRequester(record, caller);
    assertExecutable(record, this.#now(), await this.currentMembers(record));
    const marker = this.#executions.issue({ id: record.id, operation: record.operation, method: record.method, url: record.url, paramsSha256: record.paramsSha256 });
    return { record, marker };
  }

  /**
   * The gate's check of a re-dispatched request: its marker must be one issued and not used, for
   * exactly this operation, method, URL and parameters, by the requester; then approved →
   * executed by compare-and-set, before the action runs, so of two executions only one runs it.
   */
  async admitExecution(marker: string, call: ProtectedCall): Promise<PendingExecution> {
    const execution = this.#executions.take(marker);
    if (!execution || execution.operation !== call.operation || execution.method !== call.method || execution.url !== call.url
      || this.paramsHash(call.operation, call.method, call.url, call.body ?? null) !== execution.paramsSha256) {
      throw new KeyholdError('ERR_APPROVAL_EXECUTION_INVALID', 'not a valid execution of an approved request');
    }
    const caller = callerPerson(call.token, 'executing a request');
    // Membership again, right before the action: an approver removed since no longer counts.
    const members = await this.currentMembers(await this.requests.get(execution.id));
    await this.requests.update(execution.id, (current) => beginExecution(current, caller, this.#now(), members));
    execution.began = true;
    return execution;
  }

  /**
   * After the re-dispatched request was answered: the marker is void; if the action ran, its status
   * is recorded and credentials leave the stored body. A request already gone (an action that ran
   * longer than the retention, and a sweep deleted the executed request meanwhile) has nothing left
   * to record into: the execute route's audit record still carries the status.
   */
  async finishExecution(marker: string, status: number): Promise<boolean> {
    const execution = this.#executions.release(marker);
    if (!execution?.began) return false;
    try {
      await this.ended(await this.requests.update(execution.id, (current) => this.scrubbed({ ...current, executionStatus: status })));
    } catch (err) {
      if (!isKeyholdError(err, 'ERR_APPROVAL_NOT_FOUND')) throw err;
    }
    return true;
  }

  /** A request that is over keeps its credentials only as their keyed hashes. */
  private scrubbed(record: ApprovalRecord): ApprovalRecord {
    return hasSecretFields(record.operation) ? { ...record, body: this.shown(record.operation, record.body) } : record;
  }

  /**
   * Writes an approval policy after checking that its quorum can be met at all: the group exists
   * and has at least `required` members (a quorum that can never be reached would lock its
   * operations, and the policy itself, for good).
   */
  async putPolicy(name: string, input: ApprovalPolicyInput): Promise<ApprovalPolicy> {
    const members = await this.#groups.membersOf(input.group);
    if (members.length < input.required) {
      throw new KeyholdError('ERR_APPROVAL_POLICY_INVALID', `group "${input.group}" has ${members.length} member(s): ${input.required} approvals could never be given`);
    }
    return this.policies.put(name, input);
  }
}
