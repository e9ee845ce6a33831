import type { Barrier } from '../barrier/barrier.js';
import { KeyholdError } from '../errors.js';
import { watchBarrierPaths } from '../storage/change-watch.js';
import { compilePolicies, ROOT_POLICY_NAME, type CompiledPolicies } from './evaluate.js';
import { parsePolicy } from './parse.js';
import type { Policy } from './types.js';

const MAX_COMPILED = 10_000;

/** Placeholder names used by a policy's rules (e.g. `k8s.namespace`). */
function variablesUsed(policies: readonly Policy[]): string[] {
  const used = new Set<string>();
  for (const policy of policies) for (const rule of policy.rules) for (const m of rule.path.matchAll(/\{\{([a-z0-9._]+)\}\}/g)) used.add(m[1] as string);
  return [...used].sort();
}

function cacheKeyOf(namesKey: string, used: readonly string[], variables?: Readonly<Record<string, string>>): string {
  if (used.length === 0) return namesKey;
  return `${namesKey}\0${used.map((k) => `${k}=${variables?.[k] ?? ''}`).join('\n')}`;
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
  /** Per policy-name set: the placeholder variables its rules use. */
  private readonly used = new Map<string, string[]>();
  /** Bumped by every write: a compile that overlapped one must not be cached. */
  private generation = 0;

  constructor(private readonly barrier: Barrier) {
    // Another replica's policy write: recompile everything, as after a local one.
    watchBarrierPaths(barrier.changes, 'sys/policies/', () => {
      this.generation++;
      this.compiled.clear();
      this.used.clear();
    });
  }

  async put(name: string, input: unknown): Promise<Policy> {
    if (name === ROOT_POLICY_NAME) throw new KeyholdError('ERR_POLICY_INVALID', 'the root policy is built in and cannot be changed');
    const policy = parsePolicy(name, input);
    this.generation++;
    await this.barrier.putJson(policyPath(name), policy);
    this.generation++;
    this.compiled.clear();
    this.used.clear();
    return policy;
  }

  async get(name: string): Promise<Policy> {
    const policy = await this.barrier.getJson<Policy>(policyPath(name));
    if (!policy) throw new KeyholdError('ERR_NOT_FOUND', `policy "${name}" does not exist`);
    return policy;
  }

  async delete(name: string): Promise<void> {
    this.generation++;
    await this.barrier.delete(policyPath(name));
    this.generation++;
    this.compiled.clear();
    this.used.clear();
  }

  /** The names among `names` whose rules use identity placeholders (for the conferral rule, src/policy/confer.ts). */
  async placeholderPolicies(names: readonly string[]): Promise<Set<string>> {
    const scoped = new Set<string>();
    for (const name of names) {
      if (name === ROOT_POLICY_NAME) continue;
      const policy = await this.barrier.getJson<Policy>(policyPath(name));
      if (policy && variablesUsed([policy]).length > 0) scoped.add(name);
    }
    return scoped;
  }

  async list(): Promise<string[]> {
    return (await this.barrier.list('sys/policies/')).map((p) => p.slice('sys/policies/'.length));
  }

  /**
   * The compiled set if it is cached: the common case, without an await. The key carries only the
   * identity variables the named policies use, so callers without placeholders share one entry.
   */
  cachedFor(names: readonly string[], variables?: Readonly<Record<string, string>>): CompiledPolicies | undefined {
    const namesKey = names.join('\n');
    const used = this.used.get(namesKey);
    return used === undefined ? undefined : this.compiled.get(cacheKeyOf(namesKey, used, variables));
  }

  /**
   * The compiled set for a token's policy names (and identity variables, for placeholder rules);
   * names that no longer exist grant nothing.
   */
  async compiledFor(names: readonly string[], variables?: Readonly<Record<string, string>>): Promise<CompiledPolicies> {
    const cached = this.cachedFor(names, variables);
    if (cached) return cached;
    const generation = this.generation;
    const policies: Policy[] = [];
    for (const name of names) {
      if (name === ROOT_POLICY_NAME) policies.push({ name, rules: [] });
      else {
        const policy = await this.barrier.getJson<Policy>(policyPath(name));
        if (policy) policies.push(policy);
      }
    }
    const compiled = compilePolicies(policies, variables);
    // A policy written while we read must not leave the old rules cached (the next request recompiles).
    if (generation !== this.generation) return compiled;
    const namesKey = names.join('\n');
    const used = variablesUsed(policies);
    // Placeholder policies make one entry per identity: bound the cache.
    if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
    this.used.set(namesKey, used);
    this.compiled.set(cacheKeyOf(namesKey, used, variables), compiled);
    return compiled;
  }
}
