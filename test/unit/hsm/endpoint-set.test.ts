import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEndpointSet, parseEndpointSet } from '../../../src/hsm/endpoint-set.js';

describe('the HSM endpoint-set document (operator ↔ server)', () => {
  it('formats sorted by name with fixed keys, so equal sets are equal text, and parses back', () => {
    const a = formatEndpointSet({ cluster: 'c', endpoints: [{ name: 'b', address: 'unix:path=/b' }, { name: 'a', address: 'unix:path=/a' }] });
    const b = formatEndpointSet({ endpoints: [{ address: 'unix:path=/a', name: 'a' }, { name: 'b', address: 'unix:path=/b' }], cluster: 'c' } as never);
    assert.equal(a, b);
    assert.equal(a, '{"cluster":"c","endpoints":[{"name":"a","address":"unix:path=/a"},{"name":"b","address":"unix:path=/b"}]}\n');
    assert.deepEqual(parseEndpointSet(a), { cluster: 'c', endpoints: [{ name: 'a', address: 'unix:path=/a' }, { name: 'b', address: 'unix:path=/b' }] });
    assert.deepEqual(parseEndpointSet('{"cluster":"c","endpoints":[]}'), { cluster: 'c', endpoints: [] });
  });

  it('refuses what the server must not use, with ERR_CONFIG naming the field', () => {
    const bad: Array<[string, RegExp]> = [
      ['not json', /not valid JSON/],
      ['[]', /not a JSON object/],
      ['{"endpoints":[]}', /"cluster"/],
      ['{"cluster":"c"}', /endpoints is not an array/],
      ['{"cluster":"c","endpoints":[{"name":"../etc","address":"x"}]}', /endpoints\[0\]\.name/],
      ['{"cluster":"c","endpoints":[{"name":"a/b","address":"x"}]}', /endpoints\[0\]\.name/],
      ['{"cluster":"c","endpoints":[{"name":"a","address":""}]}', /endpoints\[0\]\.address/],
      ['{"cluster":"c","endpoints":[{"name":"a","address":"x\\ny"}]}', /endpoints\[0\]\.address/],
      ['{"cluster":"c","endpoints":[{"name":"a","address":"x"},{"name":"a","address":"y"}]}', /names "a" twice/],
    ];
    for (const [text, message] of bad) {
      assert.throws(() => parseEndpointSet(text), (err: { code?: string; message: string }) => err.code === 'ERR_CONFIG' && message.test(err.message), text);
    }
  });
});
