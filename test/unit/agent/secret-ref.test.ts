import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { writeAtomically } from '../../../src/agent/agent.js';
import { envReference, parseSecretRef, renderSecret, renderTemplate, templateRefs } from '../../../src/client/secret-ref.js';
import { tempDir } from '../../helpers/temp.js';

it('secret references: path and optional field; traversal and junk refused', () => {
  assert.deepEqual(parseSecretRef('app/db#password'), { path: 'app/db', field: 'password' });
  assert.deepEqual(parseSecretRef('app/db'), { path: 'app/db' });
  for (const bad of ['', '/abs', 'a/../b', 'a//b', 'a b', 'app/db#', 'app/db#a b']) assert.throws(() => parseSecretRef(bad), Error, bad);
});

it('env references need keyhold: and a field; other values pass through', () => {
  assert.deepEqual(envReference('keyhold:app/db#password'), { path: 'app/db', field: 'password' });
  assert.equal(envReference('plain value'), undefined);
  assert.equal(envReference('vault:secret#x'), undefined);
  assert.throws(() => envReference('keyhold:app/db'), /needs a #field/);
});

it('rendering: a field as text, the whole secret as JSON, a missing field is an error', () => {
  assert.equal(renderSecret({ a: 'x', n: 3 }, { path: 'p', field: 'a' }), 'x');
  assert.equal(renderSecret({ a: 'x', n: 3 }, { path: 'p', field: 'n' }), '3');
  assert.equal(renderSecret({ a: 'x' }, { path: 'p' }), '{"a":"x"}');
  assert.throws(() => renderSecret({ a: 'x' }, { path: 'p', field: 'b' }), /no field b/);
});

it('writeAtomically: final content and mode, no temp files left, unsafe names refused', () => {
  const dir = tempDir('keyhold-atomic-');
  writeAtomically(dir, 'secret', 'one', 0o400);
  writeAtomically(dir, 'secret', 'two', 0o440);
  assert.equal(readFileSync(join(dir, 'secret'), 'utf8'), 'two');
  assert.equal(statSync(join(dir, 'secret')).mode & 0o777, 0o440);
  assert.deepEqual(readdirSync(dir), ['secret']);
  for (const bad of ['../x', '.hidden', 'a/b', '']) assert.throws(() => writeAtomically(dir, bad, "x", 0o400), /invalid file name/, bad);
});

it('templates: placeholders name path#field; rendering fills them; a missing field is an error', () => {
  const t = 'host=db\nuser={{ app/db#user }}\npass={{app/db#password}}\nkey={{ app/api#key }}\n';
  assert.deepEqual(templateRefs(t).map((r) => `${r.path}#${r.field}`), ['app/db#user', 'app/db#password', 'app/api#key']);
  const secrets = new Map<string, Record<string, unknown>>([['app/db', { user: 'u', password: 'p' }], ['app/api', { key: 'k' }]]);
  assert.equal(renderTemplate(t, secrets), 'host=db\nuser=u\npass=p\nkey=k\n');
  assert.throws(() => templateRefs('{{ app/db }}'), /needs a #field/);
  for (const typo of ['{{ app/db#pw }', '{{ app/db#pw', 'x }} y', '{{ app/db #pw }}']) assert.throws(() => templateRefs(typo), /malformed placeholder/, typo);
  assert.throws(() => renderTemplate('{{ app/db#nope }}', secrets), /no field nope/);
});
