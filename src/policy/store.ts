import type { Barrier } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';
import { compilePolicies, ROOT_POLICY_NAME, type CompiledPolicies } from './evaluate.js';
import { parsePolicy } from './parse.js';
import type { Policy } from './types.js';

function policyPath(name: string): string {
  return `sys/policies/${name}`;
}

/**
 * Policies through the barrier, plus compiled policy sets cached by the sorted list of names (a
 * decision is needed on every request). Any policy write clears the compiled cache.
 */
export class PolicyStore {
  private readonly compiled = new Map<string, CompiledPolicies>();

  constructor(private readonly barrier: Barrier) {}

  async put(name: string, input: unknown): Promise<Policy> {
    if (name === ROOT_POLICY_NAME) throw new KeyholdError('ERR_POLICY_INVALID', 'the root policy is built in and cannot be changed');
    const policy = parsePolicy(name, input);
    await this.barrier.putJson(policyPath(name), policy);
    this.compiled.clear();
    return policy;
  }

  async get(name: string): Promise<Policy> {
    const policy = await this.barrier.getJson<Policy>(policyPath(name));
    if (!policy) throw new KeyholdError('ERR_NOT_FOUND', `policy "${name}" does not exist`);
    return policy;
  }

  async delete(name: string): Promise<void> {
    await this.barrier.delete(policyPath(name));
    this.compiled.clear();
  }

  async list(): Promise<string[]> {
    return (await this.barrier.list('sys/policies/')).map((p) => p.slice('sys/policies/'.length));
  }

  /** The compiled set if it is cached: the common case, without an await. */
  cachedFor(names: readonly string[]): CompiledPolicies | undefined {
    return this.compiled.get(names.join('\n'));
  }

  /** The compiled set for a token's policy names; names that no longer exist grant nothing. */
  async compiledFor(names: readonly string[]): Promise<CompiledPolicies> {
    const cacheKey = names.join('\n');
    const cached = this.compiled.get(cacheKey);
    if (cached) return cached;
    const policies: Policy[] = [];
    for (const name of names) {
      if (name === ROOT_POLICY_NAME) policies.push({ name, rules: [] });
      else {
        const policy = await this.barrier.getJson<Policy>(policyPath(name));
        if (policy) policies.push(policy);
      }
    }
    const compiled = compilePolicies(policies);
    this.compiled.set(cacheKey, compiled);
    return compiled;
  }
}
