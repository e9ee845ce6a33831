/** The flood-limit settings: api.unauthenticatedRateLimit in the file, or KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=MAX/SECONDS. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigFile } from '../../../src/core/config.js';
import { isKeyholdError } from '../../../src/errors.js';

describe('config: unauthenticated rate limit', () => {
  const dir = mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), 'keyhold-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (api: string) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, `storage: { sqlite: { path: k.db } }\naudit: { path: a.log }\nhsm: { module: /x.so, tokenLabel: t, pinEnv: P }\n${api}`);
    return path;
  };

  it('is absent by default (the server then uses 100 per 10 s)', () => {
    assert.equal(loadConfigFile(file(''), {}).api?.unauthenticatedRateLimit, undefined);
  });

  it('reads api.unauthenticatedRateLimit from the file', () => {
    assert.deepEqual(loadConfigFile(file('api: { unauthenticatedRateLimit: { max: 5, windowSeconds: 2 } }\n'), {}).api?.unauthenticatedRateLimit, { max: 5, windowSeconds: 2 });
  });

  it('takes KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=MAX/SECONDS over the file, keeping the other api settings', () => {
    const config = loadConfigFile(file('api: { bodyLimitBytes: 2048, unauthenticatedRateLimit: { max: 5, windowSeconds: 2 } }\n'), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: '300/60' });
    assert.deepEqual(config.api, { bodyLimitBytes: 2048, unauthenticatedRateLimit: { max: 300, windowSeconds: 60 } });
  });

  for (const bad of ['100', '100/0', '0/10', 'a/b', '10/10s']) {
    it(`refuses KEYHOLD_UNAUTHENTICATED_RATE_LIMIT=${bad} with ERR_CONFIG`, () => {
      assert.throws(() => loadConfigFile(file(''), { KEYHOLD_UNAUTHENTICATED_RATE_LIMIT: bad }), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'));
    });
  }

  it('refuses unknown fields and out-of-range values in the file', () => {
    for (const api of ['{ max: 5, windowSeconds: 2, burst: 1 }', '{ max: 5 }', '{ max: 5, windowSeconds: 0.5 }']) {
      assert.throws(() => loadConfigFile(file(`api: { unauthenticatedRateLimit: ${api} }\n`), {}), (err: unknown) => isKeyholdError(err, 'ERR_CONFIG'), api);
    }
  });
});
