import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isKeyholdError } from '../../../src/errors.js';
import { compilePolicies, fillPath } from '../../../src/policy/evaluate.js';
import { parsePolicy } from '../../../src/policy/parse.js';

it('placeholders are whole segments from a fixed list; anything else is refused with the list', () => {
  parsePolicy('p', { rules: [{ path: 'secrets/{{k8s.namespace}}/{{k8s.service_account}}/*', capabilities: ['read'] }] });
  for (const bad of ['secrets/x{{k8s.namespace}}/*', 'secrets/{{k8s.node}}/*', 'secrets/{{ k8s.namespace }}/*', 'secrets/{k8s.namespace}/*']) {
    assert.throws(() => parsePolicy('p', { rules: [{ path: bad, capabilities: ['read'] }] }), (e) => isKeyholdError(e, 'ERR_POLICY_INVALID') && /placeholder|may only contain/.test((e as Error).message), bad);
  }
});

it('a rule with placeholders grants only within the caller\'s own namespace; without the variable it grants nothing', () => {
  const policy = parsePolicy('per-ns', { rules: [{ path: 'secrets/{{k8s.namespace}}/*', capabilities: ['read'] }, { path: 'secrets/shared/*', capabilities: ['read'] }] });
  const app = compilePolicies([policy], { 'k8s.namespace': 'app' });
  assert.equal(app.allowed('secrets/app/db', 'read'), true);
  assert.equal(app.allowed('secrets/other/db', 'read'), false);
  assert.equal(app.allowed('secrets/shared/x', 'read'), true);
  const none = compilePolicies([policy]);
  assert.equal(none.allowed('secrets/app/db', 'read'), false);
  assert.equal(none.allowed('secrets/{{k8s.namespace}}/db', 'read'), false, 'the placeholder itself is not a path');
  assert.equal(none.allowed('secrets/shared/x', 'read'), true);
  // Values that are not one safe segment never widen a rule.
  assert.equal(fillPath('secrets/{{k8s.namespace}}/*', { 'k8s.namespace': '../x' }), undefined);
  assert.equal(fillPath('secrets/{{k8s.namespace}}/*', { 'k8s.namespace': 'a/b' }), undefined);
  assert.equal(fillPath('secrets/{{k8s.namespace}}/*', { 'k8s.namespace': '*' }), undefined);
});
