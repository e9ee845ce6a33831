import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allowed, capabilitiesFor, compilePolicies, ROOT_POLICY_NAME } from '../../../src/policy/evaluate.js';
import { parsePolicy } from '../../../src/policy/parse.js';
import { CAPABILITIES, type Capability, type Policy } from '../../../src/policy/types.js';

const dev = parsePolicy('dev', {
  rules: [
    { path: 'secrets/app', capabilities: ['read', 'list'] },
    { path: 'secrets/app/*', capabilities: ['read', 'create', 'update'] },
    { path: 'secrets/app/locked', capabilities: ['deny'] },
    { path: 'keys/payments', capabilities: ['encrypt', 'decrypt'] },
    { path: 'keys/+/meta', capabilities: ['read'] },
  ],
});
const ops = parsePolicy('ops', {
  rules: [
    { path: 'secrets/app/*', capabilities: ['delete'] },
    { path: 'secrets/app/shared/*', capabilities: ['deny'] },
    { path: 'keys/+/meta', capabilities: ['rotate'] },
    { path: 'keys/pay*', capabilities: ['sign'] },
    { path: 'sys/policies/+', capabilities: ['read'] },
  ],
});

const RW: Capability[] = ['read', 'create', 'update', 'delete'];
/** Expected effective capabilities of dev+ops on each path; anything not listed is denied. */
const TABLE: [string, Capability[]][] = [
  ['secrets/app', ['read', 'list']],
  ['secrets/application', []], // prefix pitfall: exact rule is not a prefix
  ['secrets/app/x', RW],
  ['secrets/app/x/y', RW],
  ['secrets/app/locked', []],
  ['secrets/app/locked/child', RW], // deny on the exact path only
  ['secrets/app/shared', RW], // shared/* does not cover shared itself
  ['secrets/app/shared/k', []],
  ['secrets/app/shared/k/deep', []],
  ['secrets/apps/x', []],
  ['secrets/other', []],
  ['secrets', []],
  ['SECRETS/app', []],
  ['keys/payments', ['encrypt', 'decrypt', 'sign']],
  ['keys/payroll', ['sign']],
  ['keys/pay', ['sign']],
  ['keys/pa', []],
  ['keys/payments/meta', ['read', 'rotate', 'sign']],
  ['keys/x/meta', ['read', 'rotate']],
  ['keys/x/meta/more', []],
  ['keys/x/metadata', []],
  ['keys/meta', []], // '+' needs a segment
  ['keys/a/b/meta', []], // '+' is exactly one segment
  ['sys/policies/ops', ['read']],
  ['sys/policies/ops/x', []],
  ['sys/policies', []],
  // Non-canonical request paths are denied outright.
  ['secrets/app//x', []],
  ['secrets/app/../app/x', []],
  ['secrets/app/./x', []],
  ['/secrets/app/x', []],
  ['secrets/app/x/', []],
  ['keys//meta', []],
  ['', []],
];

describe('policy evaluation: exhaustive table', () => {
  for (const policies of [[dev, ops], [ops, dev]]) {
    const order = policies.map((p) => p.name).join('+');
    const compiled = compilePolicies(policies);
    for (const [path, expected] of TABLE) {
      it(`${order}: ${JSON.stringify(path)} -> [${expected.join(', ')}]`, () => {
        for (const cap of CAPABILITIES) {
          const want = expected.includes(cap);
          assert.equal(allowed(policies, path, cap), want, `allowed(${path}, ${cap})`);
          assert.equal(compiled.allowed(path, cap), want, `compiled.allowed(${path}, ${cap})`);
        }
        assert.deepEqual(capabilitiesFor(policies, path), new Set(expected));
        assert.deepEqual(compiled.capabilities(path), new Set(expected));
      });
    }
  }
});

describe('policy evaluation: rules', () => {
  const p = (name: string, rules: [string, Capability[]][]): Policy =>
    parsePolicy(name, { rules: rules.map(([path, capabilities]) => ({ path, capabilities })) });

  it('an empty policy list, or policies without rules, deny everything', () => {
    for (const policies of [[], [p('none', [])]]) {
      for (const path of ['a', 'secrets/app', 'sys/policies/root']) {
        for (const cap of CAPABILITIES) assert.equal(allowed(policies, path, cap), false);
        assert.equal(capabilitiesFor(policies, path).size, 0);
      }
    }
  });

  it('a deny in any policy beats grants from every policy, including on the same rule', () => {
    const grant = p('grant', [['secrets/*', ['read', 'update']]]);
    const deny = p('deny', [['secrets/x', ['deny']]]);
    assert.equal(allowed([grant], 'secrets/x', 'read'), true);
    assert.equal(allowed([grant, deny], 'secrets/x', 'read'), false);
    assert.equal(allowed([deny, grant], 'secrets/x', 'update'), false);
    assert.equal(allowed([grant, deny], 'secrets/y', 'read'), true);
    const mixed = p('mixed', [['a', ['read', 'deny']]]);
    assert.equal(allowed([mixed], 'a', 'read'), false);
    const broad = p('broad', [['*', ['deny']]]);
    assert.equal(allowed([grant, broad], 'secrets/y', 'read'), false);
  });

  it('unites capabilities of all matching rules across policies', () => {
    const a = p('a', [['k/+', ['encrypt']], ['k/x', ['decrypt']]]);
    const b = p('b', [['k/*', ['sign']], ['k/x', ['encrypt']]]);
    assert.deepEqual(capabilitiesFor([a, b], 'k/x'), new Set(['encrypt', 'decrypt', 'sign']));
    assert.deepEqual(capabilitiesFor([a, b], 'k/y'), new Set(['encrypt', 'sign']));
  });

  it('asking for "deny" itself is never allowed', () => {
    const d = p('d', [['a', ['deny']], ['b', ['read']]]);
    assert.equal(allowed([d], 'a', 'deny'), false);
    assert.equal(allowed([d], 'b', 'deny'), false);
    assert.equal(allowed([{ name: ROOT_POLICY_NAME, rules: [] }], 'a', 'deny'), false);
  });

  it('`*` alone matches every path; `+` alone matches exactly one segment', () => {
    const star = p('star', [['*', ['read']]]);
    for (const path of ['a', 'a/b', 'a/b/c']) assert.equal(allowed([star], path, 'read'), true);
    const plus = p('plus', [['+', ['read']]]);
    assert.equal(allowed([plus], 'a', 'read'), true);
    assert.equal(allowed([plus], 'a/b', 'read'), false);
    const both = p('both', [['+/x/+/*', ['list']]]);
    assert.equal(allowed([both], 'a/x/b/c', 'list'), true);
    assert.equal(allowed([both], 'a/x/b/c/d', 'list'), true);
    assert.equal(allowed([both], 'a/x/b', 'list'), false);
    assert.equal(allowed([both], 'a/y/b/c', 'list'), false);
    assert.equal(allowed([both], 'a/b/x/b/c', 'list'), false);
  });

  it('regex metacharacters in rule paths are literal', () => {
    const dots = p('dots', [['a.b/+', ['read']], ['c.d*', ['list']]]);
    assert.equal(allowed([dots], 'a.b/x', 'read'), true);
    assert.equal(allowed([dots], 'aXb/x', 'read'), false);
    assert.equal(allowed([dots], 'c.d/e', 'list'), true);
    assert.equal(allowed([dots], 'cXd/e', 'list'), false);
  });

  it('the root policy allows everything, even over deny rules of other policies', () => {
    const root: Policy = { name: ROOT_POLICY_NAME, rules: [] };
    const deny = p('deny', [['*', ['deny']]]);
    const compiled = compilePolicies([deny, root]);
    assert.equal(compiled.root, true);
    for (const cap of CAPABILITIES.filter((c) => c !== 'deny')) {
      assert.equal(compiled.allowed('sys/anything/at/all', cap), true);
    }
    assert.deepEqual(compiled.capabilities('x'), new Set(CAPABILITIES.filter((c) => c !== 'deny')));
    assert.equal(compilePolicies([deny]).root, false);
  });

  it('compiled policies are a snapshot of the input', () => {
    const policy = p('snap', [['a', ['read']]]);
    const compiled = compilePolicies([policy]);
    policy.rules.push({ path: 'b', capabilities: ['read'] });
    policy.rules[0]?.capabilities.push('deny');
    assert.equal(compiled.allowed('a', 'read'), true);
    assert.equal(compiled.allowed('b', 'read'), false);
  });
});

/** Straightforward segment-by-segment reading of the rule semantics, to cross-check the compiled form. */
function referenceMatches(rulePath: string, path: string): boolean {
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..')) return false;
  const prefix = rulePath.endsWith('*');
  const ruleSegs = (prefix ? rulePath.slice(0, -1) : rulePath).split('/');
  const segs = path.split('/');
  const segMatches = (r: string, s: string): boolean => (r === '+' ? s !== '' : r === s);
  if (!prefix) return ruleSegs.length === segs.length && ruleSegs.every((r, i) => segMatches(r, segs[i] ?? ''));
  if (segs.length < ruleSegs.length) return false;
  const last = ruleSegs.length - 1;
  return ruleSegs.every((r, i) => (i < last ? segMatches(r, segs[i] ?? '') : (segs[i] ?? '').startsWith(r)));
}

function referenceCapabilities(policies: Policy[], path: string): Set<Capability> {
  const caps = new Set<Capability>();
  for (const policy of policies) {
    for (const rule of policy.rules) if (referenceMatches(rule.path, path)) rule.capabilities.forEach((c) => caps.add(c));
  }
  if (caps.has('deny')) return new Set();
  return caps;
}

describe('policy evaluation: randomized cross-check against a reference matcher', () => {
  it('agrees on 300 random policy sets x 60 random paths', () => {
    let seed = 0x5eed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
    const ruleSegs = ['a', 'ab', 'b', 'x', '+'];
    const pathSegs = ['a', 'ab', 'abc', 'b', 'x', '', '..'];
    for (let round = 0; round < 300; round++) {
      const policies: Policy[] = [];
      for (let pi = 0; pi < 1 + rand(3); pi++) {
        const rules = Array.from({ length: 1 + rand(5) }, () => {
          let path = Array.from({ length: 1 + rand(3) }, () => pick(ruleSegs)).join('/');
          const tail = rand(3);
          if (tail === 1 && !path.endsWith('+')) path += '*';
          if (tail === 2) path += '/*';
          const capabilities = [...new Set(Array.from({ length: 1 + rand(3) }, () => pick(CAPABILITIES)))];
          return { path, capabilities };
        });
        policies.push(parsePolicy(`p${pi}`, { rules }));
      }
      const compiled = compilePolicies(policies);
      for (let i = 0; i < 60; i++) {
        const path = Array.from({ length: 1 + rand(4) }, () => pick(pathSegs)).join('/');
        assert.deepEqual(compiled.capabilities(path), referenceCapabilities(policies, path), `${JSON.stringify(policies)} ${path}`);
      }
    }
  });
});
