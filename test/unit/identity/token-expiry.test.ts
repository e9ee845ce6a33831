import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_TTL_SECONDS, tokenExpiresAt } from '../../../src/identity/token-expiry.js';
import { applyEnvOverrides, validateConfig, type RawConfig } from '../../../src/core/config.js';

const NOW = 1_800_000_000_000;
const MAX = 3600;

describe('tokenExpiresAt: clamped to the server maximum and to the parent', () => {
  const cases: Array<[string, number | undefined, number | undefined, number]> = [
    ['a ttl under both limits is kept', 60, NOW + 120_000, NOW + 60_000],
    ['no ttl gets the server maximum', undefined, undefined, NOW + MAX * 1000],
    ['no ttl under a parent expiring sooner gets the parent\'s expiry', undefined, NOW + 30_000, NOW + 30_000],
    ['a ttl beyond the parent is clamped to it', 365 * 86400, NOW + 30_000, NOW + 30_000],
    ['a ttl beyond the maximum is clamped to it', 365 * 86400, undefined, NOW + MAX * 1000],
    ['a parent living longer than the maximum does not lift it', 7200, NOW + 86_400_000, NOW + MAX * 1000],
    ['a parent already at its end gives no time at all', 60, NOW, NOW],
  ];
  for (const [name, ttl, parent, expected] of cases) {
    it(name, () => assert.equal(tokenExpiresAt(NOW, ttl, MAX, parent), expected));
  }
  it('the default maximum is Vault\'s 768 h', () => assert.equal(DEFAULT_MAX_TTL_SECONDS, 768 * 3600));
});

describe('tokens.maxTtlSeconds in the server config', () => {
  const base = { storage: { sqlite: { path: 'x.db' } }, hsm: { module: 'm.so', tokenLabel: 't', pinEnv: 'PIN' }, audit: { path: 'a.log' } };
  it('is optional, and a whole number of seconds from 60', () => {
    assert.equal(validateConfig(base, 't').tokens?.maxTtlSeconds, undefined);
    assert.equal(validateConfig({ ...base, tokens: { maxTtlSeconds: 3600 } }, 't').tokens?.maxTtlSeconds, 3600);
    for (const bad of [0, 59, 1.5, '1h', -1]) assert.throws(() => validateConfig({ ...base, tokens: { maxTtlSeconds: bad } }, 't'), /maxTtlSeconds/);
    assert.throws(() => validateConfig({ ...base, tokens: { maxTtl: 3600 } }, 't'), /ERR_CONFIG|invalid configuration/);
  });
  it('KEYHOLD_TOKENS_MAX_TTL_SECONDS overrides it; a value that is not a number is refused, not NaN', () => {
    const raw: RawConfig = { ...structuredClone(base), tokens: { maxTtlSeconds: 100 } };
    applyEnvOverrides(raw, { KEYHOLD_TOKENS_MAX_TTL_SECONDS: '7200' });
    assert.equal(validateConfig(raw, 't').tokens?.maxTtlSeconds, 7200);
    const bad: RawConfig = structuredClone(base);
    applyEnvOverrides(bad, { KEYHOLD_TOKENS_MAX_TTL_SECONDS: '2h' });
    assert.throws(() => validateConfig(bad, 't'), /maxTtlSeconds/);
  });
});
