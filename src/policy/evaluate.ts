/**
 * Policy decisions: pure functions, deny by default. `compilePolicies` turns a token's policies into
 * a segment trie once, because a decision is needed on every request; a lookup then costs about one
 * map probe per path segment, however many rules there are.
 */
import { CAPABILITIES, type Capability, type Policy } from './types.js';

/** A policy with this name grants every capability on every path, whatever its rules say. */
export const ROOT_POLICY_NAME = 'root';

export interface CompiledPolicies {
  /** True when the set includes the root policy. */
  readonly root: boolean;
  allowed(path: string, capability: Capability): boolean;
  /** The effective capabilities on `path` (never contains 'deny'; empty when denied). */
  capabilities(path: string): Set<Capability>;
}

// Capabilities as bits so uniting rules is a bitwise OR.
const BIT = new Map<string, number>(CAPABILITIES.map((cap, i) => [cap, 1 << i]));
const DENY = 1 << CAPABILITIES.indexOf('deny');
const ALL_GRANTS = ((1 << CAPABILITIES.length) - 1) & ~DENY;

/**
 * Request paths must be canonical: no empty, '.' or '..' segments. Otherwise a path such as
 * `secrets//app/db` could dodge a `deny` on `secrets/+/db` and later be normalised into it.
 */
const NON_CANONICAL = /(?:^|\/)\.{0,2}(?:\/|$)/;

/** A node is reached after matching some whole segments of the request path. */
interface Node {
  children: Map<string, Node>;
  /** Child for a `+` segment: any one segment. */
  plus: Node | undefined;
  /** Rules that end exactly here. */
  exact: number;
  /** Rules `<here>/<p>*`: match when the next request segment starts with p ('' for `<here>/*`). */
  prefixes: Map<string, number>;
}

const newNode = (): Node => ({ children: new Map(), plus: undefined, exact: 0, prefixes: new Map() });

function maskOf(capabilities: readonly string[]): number {
  let mask = 0;
  for (const cap of capabilities) mask |= BIT.get(cap) ?? 0; // unknown names grant nothing
  return mask;
}

function insert(root: Node, rulePath: string, mask: number): void {
  const prefix = rulePath.endsWith('*');
  const segments = (prefix ? rulePath.slice(0, -1) : rulePath).split('/');
  // For a prefix rule the last (possibly empty) segment is a partial one, matched with startsWith.
  const partial = prefix ? segments.pop() ?? '' : undefined;
  let node = root;
  for (const segment of segments) {
    if (segment === '+') {
      node = node.plus ??= newNode();
    } else {
      let child = node.children.get(segment);
      if (child === undefined) node.children.set(segment, (child = newNode()));
      node = child;
    }
  }
  if (partial === undefined) node.exact |= mask;
  else node.prefixes.set(partial, (node.prefixes.get(partial) ?? 0) | mask);
}

function lookup(root: Node, path: string): number {
  const segments = path.split('/');
  let mask = 0;
  let frontier: Node[] = [root]; // several nodes only when '+' branches
  for (const segment of segments) {
    const next: Node[] = [];
    for (const node of frontier) {
      for (const [start, bits] of node.prefixes) if (segment.startsWith(start)) mask |= bits;
      const child = node.children.get(segment);
      if (child !== undefined) next.push(child);
      if (node.plus !== undefined) next.push(node.plus);
    }
    frontier = next;
    if (frontier.length === 0) return mask;
  }
  for (const node of frontier) mask |= node.exact;
  return mask;
}

function toSet(mask: number): Set<Capability> {
  return new Set(CAPABILITIES.filter((cap) => (mask & (BIT.get(cap) ?? 0)) !== 0));
}

const PLACEHOLDER = /\{\{([a-z0-9._]+)\}\}/g;

/**
 * A rule path with its `{{k8s.namespace}}`-style placeholders filled from `variables`; undefined
 * when one has no value (the rule then grants nothing to this caller) or the value is not a safe
 * single segment.
 */
export function fillPath(path: string, variables: Readonly<Record<string, string>>): string | undefined {
  if (!path.includes('{{')) return path;
  let missing = false;
  const filled = path.replace(PLACEHOLDER, (_m, name: string) => {
    const value = variables[name];
    if (value === undefined || !/^[A-Za-z0-9._-]{1,253}$/.test(value) || value === '.' || value === '..') missing = true;
    return value ?? '';
  });
  return missing ? undefined : filled;
}

/**
 * Precomputes the rules of `policies` (a snapshot: later changes to the objects are not seen),
 * with placeholders filled from the caller's identity `variables`.
 */
export function compilePolicies(policies: readonly Policy[], variables: Readonly<Record<string, string>> = {}): CompiledPolicies {
  const root = policies.some((p) => p.name === ROOT_POLICY_NAME);
  const trie = newNode();
  for (const policy of policies) {
    for (const rule of policy.rules) {
      const path = fillPath(rule.path, variables);
      if (path !== undefined) insert(trie, path, maskOf(rule.capabilities));
    }
  }
  const effectiveMask = (path: string): number => {
    if (root) return ALL_GRANTS;
    if (NON_CANONICAL.test(path)) return 0;
    const mask = lookup(trie, path);
    return (mask & DENY) !== 0 ? 0 : mask;
  };
  return {
    root,
    // Asking for 'deny' itself is never "allowed": it is a marker, not an operation.
    allowed: (path, capability) => (effectiveMask(path) & (BIT.get(capability) ?? 0) & ALL_GRANTS) !== 0,
    capabilities: (path) => toSet(effectiveMask(path)),
  };
}

/** One-off decision; on hot paths keep the result of `compilePolicies` instead. */
export function allowed(policies: readonly Policy[], path: string, capability: Capability): boolean {
  return compilePolicies(policies).allowed(path, capability);
}

export function capabilitiesFor(policies: readonly Policy[], path: string): Set<Capability> {
  return compilePolicies(policies).capabilities(path);
}
