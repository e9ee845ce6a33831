import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { assertCanConfer, type Conferrer } from './confer.js';
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

interface CompiledEntry {
  /** The policy records compiled, as the read cache handed them out (null: absent; undefined: root). */
  sources: ReadonlyArray<Policy | null | undefined>;
  compiled: CompiledPolicies;
}

/**
 * Policies through the policies view, plus compiled policy sets memoised by the sorted list of
 * names (a decision is needed on every request). A memoised set is used only while each policy it
 * was compiled from is still the very object the barrier's read cache holds: a policy write (here
 * or, through the store's change feed, on another replica) evicts it there, so the set is
 * recompiled on the next request. No invalidation of its own.
 */
export class PolicyStore {
  private readonly compiled = new Map<string, CompiledEntry>();
  /** Per policy-name set: the placeholder variables its rules used when last compiled. */
  private readonly used = new Map<string, string[]>();

  constructor(private readonly view: BarrierView) {}

  async put(name: string, input: unknown): Promise<Policy> {
    if (name === ROOT_POLICY_NAME) throw new KeyholdError('ERR_POLICY_INVALID', 'the root policy is built in and cannot be changed');
    const policy = parsePolicy(name, input);
    await this.view.put(name, policy);
    return policy;
  }

  async get(name: string): Promise<Policy> {
    const policy = await this.view.get<Policy>(name);
    if (!policy) throw new KeyholdError('ERR_NOT_FOUND', `policy "${name}" does not exist`);
    return policy;
  }

  async delete(name: string): Promise<void> {
    await this.view.delete(name);
  }

  /** The names among `names` whose rules use identity placeholders (for the conferral rule, src/policy/confer.ts). */
  async placeholderPolicies(names: readonly string[]): Promise<Set<string>> {
    const scoped = new Set<string>();
    for (const name of names) {
      if (name === ROOT_POLICY_NAME) continue;
      const policy = await this.view.cached<Policy>(name, true);
      if (policy && variablesUsed([policy]).length > 0) scoped.add(name);
    }
    return scoped;
  }

  /**
   * assertCanConfer for a mapping of other identities to `names` (a login role, a group, an
   * account's groups): which of them use identity placeholders is read only for an
   * identity-bound caller, the one case the rule needs it.
   */
  async assertCanConferToOthers(caller: Conferrer, names: readonly string[]): Promise<void> {
    const placeholderPolicies = caller.selectors?.length ? await this.placeholderPolicies(names) : undefined;
    assertCanConfer(caller, names, { otherIdentities: true, ...(placeholderPolicies ? { placeholderPolicies } : {}) });
  }

  list(): Promise<string[]> {
    return this.view.list();
  }

  /**
   * The compiled set if it is memoised and its policies are cached and unchanged: the common
   * case, without an await. The key carries only the identity variables the named policies use,
   * so callers without placeholders share one entry.
   */
  cachedFor(names: readonly string[], variables?: Readonly<Record<string, string>>): CompiledPolicies | undefined {
    const entry = this.entryFor(names, variables);
    if (!entry) return undefined;
    for (let i = 0; i < names.length; i++) {
      if (names[i] !== ROOT_POLICY_NAME && this.view.peek<Policy>(names[i] as string) !== entry.sources[i]) return undefined;
    }
    return entry.compiled;
  }

  /**
   * The compiled set for a token's policy names (and identity variables, for placeholder rules);
   * names that no longer exist grant nothing.
   */
  async compiledFor(names: readonly string[], variables?: Readonly<Record<string, string>>): Promise<CompiledPolicies> {
    const sources = await Promise.all(names.map((name) => (name === ROOT_POLICY_NAME ? undefined : this.view.cached<Policy>(name, true))));
    const entry = this.entryFor(names, variables);
    if (entry && sources.every((source, i) => source === entry.sources[i])) return entry.compiled;
    const policies = names.map((name, i) => (name === ROOT_POLICY_NAME ? { name, rules: [] } : sources[i])).filter((p): p is Policy => Boolean(p));
    const compiled = compilePolicies(policies, variables);
    const namesKey = names.join('\n');
    const used = variablesUsed(policies);
    // Placeholder policies make one entry per identity: bound the memo.
    if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
    this.used.set(namesKey, used);
    this.compiled.set(cacheKeyOf(namesKey, used, variables), { sources, compiled });
    return compiled;
  }

  private entryFor(names: readonly string[], variables?: Readonly<Record<string, string>>): CompiledEntry | undefined {
    const namesKey = names.join('\n');
    const used = this.used.get(namesKey);
    return used === undefined ? undefined : this.compiled.get(cacheKeyOf(namesKey, used, variables));
  }
}
