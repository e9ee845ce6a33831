/** TOTP (src/operators/totp.ts): RFC 6238 SHA-1, 6 digits, 30 s, ±1 step, replay refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkTotp, newTotpSecret, timeStepAt, totpCodeAt, totpUri } from '../../../src/operators/totp.js';

describe('TOTP', () => {
  it('matches RFC 6238\'s SHA-1 test vectors (the last 6 digits)', async () => {
    // RFC 6238 appendix B: the ASCII secret "12345678901234567890", base32-encoded.
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    for (const [t, code] of [[59, '287082'], [1111111109, '081804'], [1234567890, '005924'], [2000000000, '279037']] as const) {
      assert.equal(await totpCodeAt(secret, t * 1000), code);
      assert.equal(await checkTotp(secret, code, undefined, t * 1000), Math.floor(t / 30));
    }
  });

  it('accepts one step either side of now, not two', async () => {
    const secret = await newTotpSecret();
    const now = 1_700_000_000_000;
    for (const offset of [-1, 0, 1]) {
      assert.equal(await checkTotp(secret, await totpCodeAt(secret, now + offset * 30_000), undefined, now), timeStepAt(now) + offset);
    }
    for (const offset of [-2, 2]) assert.equal(await checkTotp(secret, await totpCodeAt(secret, now + offset * 30_000), undefined, now), null);
  });

  it('refuses a step already used (replay), and earlier ones', async () => {
    const secret = await newTotpSecret();
    const now = 1_700_000_000_000;
    const code = await totpCodeAt(secret, now);
    const step = await checkTotp(secret, code, undefined, now);
    assert.notEqual(step, null);
    assert.equal(await checkTotp(secret, code, step as number, now), null, 'the same code again');
    assert.equal(await checkTotp(secret, await totpCodeAt(secret, now - 30_000), step as number, now), null, 'the previous step');
    assert.equal(await checkTotp(secret, await totpCodeAt(secret, now + 30_000), step as number, now), (step as number) + 1, 'the next step is fine');
  });

  it('refuses malformed codes without asking otplib', async () => {
    const secret = await newTotpSecret();
    for (const bad of ['', '12345', '1234567', 'abcdef', ' 123456', '12345\n']) assert.equal(await checkTotp(secret, bad, undefined), null);
  });

  it('makes 160-bit secrets and standard otpauth URIs', async () => {
    const secret = await newTotpSecret();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.notEqual(secret, await newTotpSecret());
    const uri = new URL(await totpUri('keyhold', 'alice', secret));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(uri.searchParams.get('secret'), secret);
    assert.equal(uri.searchParams.get('issuer'), 'keyhold');
  });
});
