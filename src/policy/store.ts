import type { Barrier } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';
import { compilePolicies, ROOT_POLICY_NAME, type CompiledPolicies } from './evaluate.js';
import { parsePolicy } from './parse.js';
import type { Policy } from './types.js';

const MAX_COMPILED = 10_000;

function cacheKeyOf(names: readonly string[], variables?: Readonly<Record<string, string>>): string {
  const key = names.join('\n');
  if (!variables) return key;
  return `${key}\0${Object.keys(variables).sort().map((k) => `${k}=${variables[k]}`).join('\n')}`;
}

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
  cachedFor(names: readonly string[], variables?: Readonly<Record<string, string>>): CompiledPolicies | undefined {
    return this.compiled.get(cacheKeyOf(names, variables));
  }

  /**
   * The compiled set for a token's policy names (and identity variables, for placeholder rules);
   * names that no longer exist grant nothing.
   */
  async compiledFor(names: readonly string[], variables?: Readonly<Record<string, string>>): Promise<CompiledPolicies> {
    const cacheKey = cacheKeyOf(names, variables);
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
    const compiled = compilePolicies(policies, variables);
    // Identity variables make one entry per workload: bound the cache.
    if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
    this.compiled.set(cacheKey, compiled);
    return compiled;
  }
}
