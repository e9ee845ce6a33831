import assert from 'node:assert/strict';
import { it } from 'node:test';
import { globMatch } from '../../../../src/identity/kubernetes/glob.js';

it('globMatch: * matches any run (including none); everything else is literal', () => {
  const yes: Array<[string, string]> = [['app', 'app'], ['*', 'anything'], ['*', ''], ['worker-*', 'worker-1'], ['worker-*', 'worker-'], ['*-prod', 'api-prod'], ['a*b*c', 'abc'], ['a*b*c', 'a-x-b-y-c'], ['team.*.svc', 'team.a.svc']];
  const no: Array<[string, string]> = [['app', 'apps'], ['worker-*', 'worker'], ['*-prod', 'prod'], ['a*b*c', 'acb'], ['a*b*c', 'ab'], ['team.*', 'teamx'], ['ab*ba', 'aba']];
  for (const [p, v] of yes) assert.ok(globMatch(p, v), `${p} should match ${v}`);
  for (const [p, v] of no) assert.ok(!globMatch(p, v), `${p} should not match ${v}`);
});
