import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { charsetIsUtf8 } from '../../../src/api/json-body.js';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../../../src/api/json-depth.js';
import { isKeyholdError } from '../../../src/errors.js';
import { assertSecretData, MAX_SECRET_DEPTH } from '../../../src/secrets/data-limits.js';

/** The nesting depth JSON.parse sees, computed on the parsed value (the reference for the scanner). */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

const arrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const objects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

describe('exceedsJsonDepth', () => {
  it('is exact at the limit for arrays, objects and a mix', () => {
    for (const make of [arrays, objects]) {
      assert.equal(exceedsJsonDepth(make(MAX_JSON_DEPTH)), false);
      assert.equal(exceedsJsonDepth(make(MAX_JSON_DEPTH + 1)), true);
      assert.equal(exceedsJsonDepth(make(3), 3), false);
      assert.equal(exceedsJsonDepth(make(4), 3), true);
    }
    assert.equal(exceedsJsonDepth('{"a":[{"b":[1]}]}', 4), false);
    assert.equal(exceedsJsonDepth('{"a":[{"b":[1]}]}', 3), true);
  });

  it('counts nesting, not brackets: siblings do not add up', () => {
    assert.equal(exceedsJsonDepth(`[${Array.from({ length: 1000 }, () => '[[1]]').join(',')}]`, 3), false);
  });

  it('ignores brackets inside strings, escaped quotes and backslashes included', () => {
    assert.equal(exceedsJsonDepth(`["${'['.repeat(500)}"]`, 1), false);
    assert.equal(exceedsJsonDepth(`["\\"${'{'.repeat(500)}"]`, 1), false);
    assert.equal(exceedsJsonDepth(`["a\\\\",${arrays(5)}]`, 5), true, 'an escaped backslash does not escape the closing quote');
    assert.equal(exceedsJsonDepth(`{"${'['.repeat(200)}":"${'{'.repeat(200)}"}`, 1), false, 'brackets in keys');
  });

  it('answers for text that is not JSON (JSON.parse refuses it afterwards)', () => {
    assert.equal(exceedsJsonDepth('['.repeat(MAX_JSON_DEPTH + 1)), true, 'unclosed');
    assert.equal(exceedsJsonDepth(`"${'['.repeat(1000)}`), false, 'an unterminated string');
    assert.equal(exceedsJsonDepth(']]]]'.repeat(100)), false);
    assert.equal(exceedsJsonDepth(''), false);
  });

  it('short text is never too deep', () => {
    assert.equal(exceedsJsonDepth('[[[', 3), false);
  });

  it('agrees with the parsed depth on generated documents', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const build = (depth: number): unknown => {
      if (depth === 0) return random() < 0.5 ? 'x]"}\\' : 1;
      const kids = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => build(i === 0 ? depth - 1 : Math.floor(random() * depth)));
      return random() < 0.5 ? kids : Object.fromEntries(kids.map((k, i) => [`k[${i}"`, k]));
    };
    for (let i = 0; i < 200; i++) {
      const value = build(1 + Math.floor(random() * 12));
      const text = JSON.stringify(value);
      const depth = depthOf(value);
      assert.equal(exceedsJsonDepth(text, depth), false, text);
      if (depth > 0) assert.equal(exceedsJsonDepth(text, depth - 1), true, text);
    }
  });

  it('scans a 1 MiB string body in well under a millisecond per 100 KiB', () => {
    const text = JSON.stringify({ plaintext: 'A'.repeat(1024 * 1024) });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 10; i++) exceedsJsonDepth(text);
    const perRunMs = Number(process.hrtime.bigint() - started) / 1e6 / 10;
    assert.ok(perRunMs < 10, `${perRunMs} ms per scan`);
  });
});

describe('charsetIsUtf8', () => {
  for (const ok of ['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf-8"', 'application/json; CHARSET=utf8', 'application/json; foo=bar']) {
    it(`accepts ${ok}`, () => assert.equal(charsetIsUtf8(ok), true));
  }
  for (const refused of ['application/json; charset=latin1', 'application/json; charset="iso-8859-1"', 'application/json; charset=utf-16', 'application/json; charset=', 'application/json; charset=utf-8; charset=latin1', 'application/json; charset="utf\\-16"']) {
    it(`refuses ${refused}`, () => assert.equal(charsetIsUtf8(refused), false));
  }
});

describe('assertSecretData', () => {
  const refused = (code: string) => (err: unknown) => isKeyholdError(err) && err.code === code;
  it(`accepts ${MAX_SECRET_DEPTH} levels and refuses ${MAX_SECRET_DEPTH + 1}`, () => {
    assert.doesNotThrow(() => assertSecretData(JSON.parse(objects(MAX_SECRET_DEPTH)) as Record<string, unknown>));
    assert.doesNotThrow(() => assertSecretData({ a: JSON.parse(arrays(MAX_SECRET_DEPTH - 1)) }));
    assert.throws(() => assertSecretData(JSON.parse(objects(MAX_SECRET_DEPTH + 1)) as Record<string, unknown>), refused('ERR_JSON_TOO_DEEP'));
    assert.throws(() => assertSecretData({ a: JSON.parse(arrays(MAX_SECRET_DEPTH)) }), refused('ERR_JSON_TOO_DEEP'));
  });
  it('refuses numbers that are not finite, wherever they are', () => {
    for (const data of [{ a: Infinity }, { a: -Infinity }, { a: [1, { b: Infinity }] }, { a: NaN }]) {
      assert.throws(() => assertSecretData(data), refused('ERR_BAD_REQUEST'), JSON.stringify(data));
    }
    assert.doesNotThrow(() => assertSecretData({ a: 1e308, b: -0, c: null, d: 'Infinity', e: [true] }));
  });
});
