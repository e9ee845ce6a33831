import assert from 'node:assert/strict';
import { it } from 'node:test';
import { envReference, parseSecretRef, renderSecret, renderTemplate, templateRefs } from '../../../src/client/secret-ref.js';

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

it('templates: placeholders name path#field; rendering fills them; a missing field is an error', () => {
  const t = 'host=db\nuser={{ app/db#user }}\npass={{app/db#password}}\nkey={{ app/api#key }}\n';
  assert.deepEqual(templateRefs(t).map((r) => `${r.path}#${r.field}`), ['app/db#user', 'app/db#password', 'app/api#key']);
  const secrets = new Map<string, Record<string, unknown>>([['app/db', { user: 'u', password: 'p' }], ['app/api', { key: 'k' }]]);
  assert.equal(renderTemplate(t, secrets), 'host=db\nuser=u\npass=p\nkey=k\n');
  assert.throws(() => templateRefs('{{ app/db }}'), /needs a #field/);
  for (const typo of ['{{ app/db#pw }', '{{ app/db#pw', 'x }} y', '{{ app/db #pw }}']) assert.throws(() => templateRefs(typo), /malformed placeholder/, typo);
  assert.throws(() => renderTemplate('{{ app/db#nope }}', secrets), /no field nope/);
});
