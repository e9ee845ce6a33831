import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyholdError } from '../../../src/errors.js';
import { assertCanChangeIdentitySource, assertCanConfer, type Conferrer, type ConferTarget } from '../../../src/policy/confer.js';

const denied = (err: unknown) => isKeyholdError(err, 'ERR_PERMISSION_DENIED');
const ROLE: ConferTarget = { otherIdentities: true, placeholderPolicies: new Set(['ns-scoped']) };

describe('assertCanConfer: a caller confers only what it holds; only root confers root', () => {
  const cases: Array<[string, Conferrer, string[], ConferTarget | undefined, boolean]> = [
    ['root confers root', { policies: ['root'] }, ['root'], undefined, true],
    ['root confers anything, held or not', { policies: ['root'] }, ['a', 'zzz'], undefined, true],
    ['root among others confers root', { policies: ['a', 'root'] }, ['root', 'a'], ROLE, true],
    ['a holder confers a subset', { policies: ['a', 'b'] }, ['b'], undefined, true],
    ['the empty list is always conferrable', { policies: [] }, [], undefined, true],
    ['the whole set', { policies: ['a', 'b'] }, ['a', 'b'], ROLE, true],
    ['non-root confers root', { policies: ['a'] }, ['root'], undefined, false],
    ['non-root confers root with what it holds', { policies: ['a'] }, ['a', 'root'], ROLE, false],
    ['a policy not held', { policies: ['a'] }, ['b'], undefined, false],
    ['a mix of held and not held', { policies: ['a'] }, ['a', 'b'], ROLE, false],
    ['a name that differs only in case', { policies: ['a'] }, ['A'], undefined, false],
    ['a token with no policies confers one', { policies: [] }, ['a'], undefined, false],
    ['an identity-bound caller passes a placeholder policy to a child', { policies: ['ns-scoped'], selectors: ['k8s:ns:a'] }, ['ns-scoped'], { otherIdentities: false, placeholderPolicies: new Set(['ns-scoped']) }, true],
    ['an identity-bound caller puts a placeholder policy in a role', { policies: ['ns-scoped'], selectors: ['k8s:ns:a'] }, ['ns-scoped'], ROLE, false],
    ['an identity-bound caller puts a plain policy it holds in a role', { policies: ['a'], selectors: ['k8s:ns:a'] }, ['a'], ROLE, true],
    ['a caller without identity puts a placeholder policy it holds in a role', { policies: ['ns-scoped'] }, ['ns-scoped'], ROLE, true],
  ];
  for (const [name, caller, policies, target, ok] of cases) {
    it(`${ok ? 'allows' : 'refuses'}: ${name}`, () => {
      if (ok) assertCanConfer(caller, policies, target);
      else assert.throws(() => assertCanConfer(caller, policies, target), denied);
    });
  }
});

describe('assertCanChangeIdentitySource: the identity source of an auth method is root\'s', () => {
  it('allows a root holder', () => assertCanChangeIdentitySource({ policies: ['root'] }, 'x'));
  for (const policies of [[], ['a'], ['admin', 'ops'], ['Root']]) {
    it(`refuses ${JSON.stringify(policies)}`, () => assert.throws(() => assertCanChangeIdentitySource({ policies }, 'x'), denied));
  }
});
