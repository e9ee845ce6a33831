/** Which routes get a write-ahead request record: every route that is not GET/HEAD, unless it says `readOnly`. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isReadOnly } from '../../../src/api/context.js';

describe('route classification (write-ahead audit record or not)', () => {
  const cases: Array<[method: string | string[], config: { readOnly?: boolean } | undefined, readOnly: boolean]> = [
    ['GET', undefined, true],
    ['HEAD', undefined, true],
    [['GET', 'HEAD'], undefined, true],
    ['POST', undefined, false],
    ['PUT', {}, false],
    ['DELETE', { readOnly: false }, false],
    ['PATCH', undefined, false],
    [['GET', 'POST'], undefined, false],
    ['POST', { readOnly: true }, true],
    // A GET that writes (the browser form of the SSO callback) gets the write-ahead record.
    ['GET', { readOnly: false }, false],
  ];
  for (const [method, config, expected] of cases) {
    it(`${JSON.stringify(method)} with ${JSON.stringify(config)} is ${expected ? 'read-only' : 'state-changing'}`, () => {
      assert.equal(isReadOnly(method, config), expected);
    });
  }
});
