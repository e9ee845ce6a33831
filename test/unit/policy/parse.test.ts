import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKeyholdError } from '../../../src/errors.js';
import { MAX_POLICY_PATH_LENGTH, MAX_POLICY_RULES, parsePolicy } from '../../../src/policy/parse.js';

function rejects(name: string, input: unknown, message: RegExp): void {
  assert.throws(
    () => parsePolicy(name, input),
    (err: unknown) => isKeyholdError(err, 'ERR_POLICY_INVALID') && message.test(err.message),
  );
}

const rulesWithPath = (path: string): unknown => ({ rules: [{ path, capabilities: ['read'] }] });

describe('parsePolicy', () => {
  it('accepts a valid policy and returns a copy that does not alias the input', () => {
    const input = {
      rules: [
        { path: 'secrets/app/*', capabilities: ['read', 'list'] },
        { path: 'keys/+/meta', capabilities: ['deny'] },
        { path: '*', capabilities: ['verify'] },
      ],
    };
    const policy = parsePolicy('ops.team_1-a', input);
    assert.deepEqual(policy, { name: 'ops.team_1-a', rules: input.rules });
    assert.notEqual(policy.rules, input.rules);
    assert.notEqual(policy.rules[0], input.rules[0]);
    assert.notEqual(policy.rules[0]?.capabilities, input.rules[0]?.capabilities);
    input.rules[0]?.capabilities.push('delete');
    assert.deepEqual(policy.rules[0]?.capabilities, ['read', 'list']);
  });

  it('accepts an empty rule list, and a "name" field equal to the name', () => {
    assert.deepEqual(parsePolicy('empty', { rules: [] }), { name: 'empty', rules: [] });
    assert.deepEqual(parsePolicy('same', { name: 'same', rules: [] }), { name: 'same', rules: [] });
  });

  it('accepts limits exactly at the boundary', () => {
    const longName = 'a'.repeat(64);
    assert.equal(parsePolicy(longName, { rules: [] }).name, longName);
    const longPath = 'a/'.repeat(MAX_POLICY_PATH_LENGTH / 2 - 1) + 'ab';
    assert.equal(longPath.length, MAX_POLICY_PATH_LENGTH);
    assert.equal(parsePolicy('p', rulesWithPath(longPath)).rules[0]?.path, longPath);
    const rules = Array.from({ length: MAX_POLICY_RULES }, (_, i) => ({ path: `p/${i}`, capabilities: ['read'] }));
    assert.equal(parsePolicy('p', { rules }).rules.length, MAX_POLICY_RULES);
  });

  it('accepts + segments, trailing * and dotted names', () => {
    for (const path of ['+', '+/+', 'keys/+/x', 'keys/+/*', 'keys/pay*', '*', 'a.b/c-d_e/F9', 'a/...', 'a/.x']) {
      assert.equal(parsePolicy('p', rulesWithPath(path)).rules[0]?.path, path);
    }
  });

  it('rejects bad names', () => {
    rejects('', { rules: [] }, /policy name "": must be/);
    rejects('Upper', { rules: [] }, /policy name "Upper"/);
    rejects('-lead', { rules: [] }, /policy name/);
    rejects('.lead', { rules: [] }, /policy name/);
    rejects('a'.repeat(65), { rules: [] }, /policy name/);
    rejects('has space', { rules: [] }, /policy name/);
    rejects(42 as unknown as string, { rules: [] }, /policy name 42/);
    rejects('root', { rules: [] }, /"root" is reserved/);
  });

  it('rejects documents that are not plain objects with rules', () => {
    rejects('p', null, /must be an object with a "rules" array/);
    rejects('p', [], /must be an object/);
    rejects('p', 'rules', /must be an object/);
    rejects('p', new (class { rules = []; })(), /must be an object/);
    rejects('p', {}, /rules: must be an array/);
    rejects('p', { rules: {} }, /rules: must be an array/);
    rejects('p', { rules: [], extra: 1 }, /unknown field "extra"/);
    rejects('p', { name: 'other', rules: [] }, /field "name" \("other"\) does not match/);
  });

  it('rejects more than the maximum number of rules', () => {
    const rules = Array.from({ length: MAX_POLICY_RULES + 1 }, () => ({ path: 'a', capabilities: ['read'] }));
    rejects('p', { rules }, /at most 256 rules allowed, got 257/);
  });

  it('rejects malformed rules, naming the rule index', () => {
    rejects('p', { rules: [null] }, /rules\[0\]: must be an object/);
    rejects('p', { rules: [{ path: 'a', capabilities: ['read'] }, 'a'] }, /rules\[1\]: must be an object/);
    rejects('p', { rules: [{ path: 'a', capabilities: ['read'], why: 'x' }] }, /rules\[0\]: unknown field "why"/);
    rejects('p', { rules: [{ capabilities: ['read'] }] }, /rules\[0\]\.path: must be a string/);
    rejects('p', { rules: [{ path: 7, capabilities: ['read'] }] }, /rules\[0\]\.path: must be a string/);
  });

  it('rejects bad paths with a reason', () => {
    const cases: [string, RegExp][] = [
      ['', /must not be empty/],
      ['a'.repeat(MAX_POLICY_PATH_LENGTH + 1), /must be at most 512 characters/],
      ['a b', /may only contain/],
      ['a?', /may only contain/],
      ['sécret', /may only contain/],
      ['a/*/b', /'\*' is only allowed as the last character/],
      ['a**', /'\*' is only allowed as the last character/],
      ['*a', /'\*' is only allowed/],
      ['a+', /'\+' must be a whole segment/],
      ['a/+b/c', /'\+' must be a whole segment/],
      ['a/+*', /'\+' must be a whole segment/],
      ['/a', /empty segments/],
      ['a/', /empty segments/],
      ['a//b', /empty segments/],
      ['/*', /empty segments/],
      ['a/../b', /'\.' or '\.\.' segments/],
      ['..', /'\.' or '\.\.' segments/],
      ['a/./b', /'\.' or '\.\.' segments/],
    ];
    for (const [path, reason] of cases) {
      rejects('p', rulesWithPath(path), new RegExp(`rules\\[0\\]\\.path .*: .*${reason.source}`));
    }
  });

  it('rejects bad capability lists', () => {
    const withCaps = (capabilities: unknown): unknown => ({ rules: [{ path: 'a', capabilities }] });
    rejects('p', withCaps('read'), /capabilities: must be an array/);
    rejects('p', withCaps(undefined), /capabilities: must be an array/);
    rejects('p', withCaps([]), /at least one capability/);
    rejects('p', withCaps(['write']), /capabilities\[0\]: unknown capability "write"/);
    rejects('p', withCaps(['read', 'READ']), /capabilities\[1\]: unknown capability "READ"/);
    rejects('p', withCaps([1]), /unknown capability 1/);
    rejects('p', withCaps(['read', 'list', 'read']), /capabilities\[2\]: duplicate capability "read"/);
  });
});
