/** Operator password hashing (src/operators/password-hash.ts): scrypt at OWASP's parameters, self-describing strings. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyholdError } from '../../../src/errors.js';
import { HashLimiter } from '../../../src/operators/hash-limit.js';
import { checkNewPassword, CURRENT_PARAMS, DUMMY_HASH, hashPassword, needsRehash, verifyPassword } from '../../../src/operators/password-hash.js';

const limiter = new HashLimiter(2, 64);

describe('password hashes', () => {
  it('are self-describing, with OWASP\'s scrypt parameters and a fresh salt each time', async () => {
    const a = await hashPassword('correct horse battery', limiter);
    const b = await hashPassword('correct horse battery', limiter);
    assert.match(a, /^\$scrypt\$v=1\$ln=15,r=8,p=3\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.deepEqual(CURRENT_PARAMS, { ln: 15, r: 8, p: 3 });
    assert.notEqual(a, b, 'a per-hash random salt');
    assert.equal(a.split('$')[4] === b.split('$')[4], false);
    assert.equal(needsRehash(a), false);
  });

  it('verify the right password only', async () => {
    const h = await hashPassword('correct horse battery', limiter);
    assert.equal(await verifyPassword(h, 'correct horse battery', limiter), true);
    assert.equal(await verifyPassword(h, 'correct horse batterY', limiter), false);
    assert.equal(await verifyPassword(h, '', limiter), false);
    assert.equal(await verifyPassword(h, 'x'.repeat(5000), limiter), false);
  });

  it('normalise to NFKC, so a composed and a decomposed accent are one password', async () => {
    const h = await hashPassword('caf\u00e9 au lait noir', limiter);
    assert.equal(await verifyPassword(h, 'cafe\u0301 au lait noir', limiter), true);
  });

  it('take their parameters from the string: other parameters verify, and ask for a rehash', async () => {
    const h = await hashPassword('correct horse battery', limiter);
    const tampered = h.replace('ln=15', 'ln=14');
    assert.equal(needsRehash(tampered), true);
    assert.equal(await verifyPassword(tampered, 'correct horse battery', limiter), false, 'other parameters give another key');
  });

  it('refuse strings outside the accepted range or format instead of allocating for them', async () => {
    const h = await hashPassword('correct horse battery', limiter);
    for (const bad of [h.replace('ln=15', 'ln=30'), h.replace('p=3', 'p=99'), h.replace('$v=1', '$v=2'), 'plain', '']) {
      await assert.rejects(verifyPassword(bad, 'correct horse battery', limiter), (e) => isKeyholdError(e, 'ERR_INTERNAL'));
    }
  });

  it('the dummy hash of unknown usernames verifies nothing, at the same cost', async () => {
    assert.equal(needsRehash(DUMMY_HASH), false);
    const t0 = performance.now();
    assert.equal(await verifyPassword(DUMMY_HASH, 'correct horse battery', limiter), false);
    const dummyMs = performance.now() - t0;
    const real = await hashPassword('correct horse battery', limiter);
    const t1 = performance.now();
    await verifyPassword(real, 'wrong horse battery', limiter);
    const realMs = performance.now() - t1;
    assert.ok(dummyMs > realMs * 0.5 && dummyMs < realMs * 2, `dummy ${dummyMs.toFixed(0)} ms vs real ${realMs.toFixed(0)} ms`);
  });

  it('new passwords: at least 12 characters, at most 1024 bytes, not containing the username', () => {
    const policy = (e: unknown) => isKeyholdError(e, 'ERR_PASSWORD_POLICY');
    assert.throws(() => checkNewPassword('short pass', 'alice'), policy);
    assert.throws(() => checkNewPassword('x'.repeat(1025), 'alice'), policy);
    assert.throws(() => checkNewPassword('my name is ALICE ok', 'alice'), policy);
    checkNewPassword('twelve chars', 'alice');
  });
});

describe('the hash limiter', () => {
  it('runs at most `concurrency` at once and refuses beyond its queue', async () => {
    const l = new HashLimiter(2, 1);
    let peak = 0;
    let running = 0;
    const release: Array<() => void> = [];
    const job = () => l.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => release.push(r));
      running--;
    });
    const jobs = [job(), job(), job()];
    await assert.rejects(job(), (e) => isKeyholdError(e, 'ERR_LOGIN_BUSY'));
    assert.deepEqual(l.load, { running: 2, waiting: 1 });
    while (release.length > 0 || l.load.running > 0) {
      release.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(jobs);
    assert.equal(peak, 2);
  });
});
