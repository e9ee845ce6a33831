/** Pending SSO logins in the barrier: single use, short-lived, bound to the browser, ciphertext only in storage. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Barrier } from '../../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../../src/barrier/mounts.js';
import { FLOW_TTL_MS, FlowStore, STATE_PATTERN } from '../../../../src/identity/oidc/flows.js';
import { MemoryStorage } from '../../../../src/storage/memory.js';
import { keyholdCode } from '../../../helpers/errors.js';

describe('SSO login flows', () => {
  const storage = new MemoryStorage();
  after(() => storage.close());
  const barrier = new Barrier(storage, randomBytes(32));
  let now = Date.now();
  const flows = new FlowStore(barrier.view(MOUNTS.oidc), () => now);
  const begin = () => flows.create({ redirectUri: 'https://kh.example/v1/auth/oidc/callback', issuer: 'https://idp.example', clientId: 'keyhold' });
  const invalid = (why: RegExp) => keyholdCode('ERR_OIDC_STATE_INVALID', why);

  it('hands out a state of the documented shape and gives the flow back once', async () => {
    const flow = await begin();
    assert.match(flow.state, STATE_PATTERN);
    const record = await flows.consume(flow.state);
    assert.equal(record.nonce, flow.nonce);
    assert.equal(record.codeVerifier, flow.codeVerifier);
    await assert.rejects(flows.consume(flow.state), invalid(/unknown or was already used/));
  });

  it('lets exactly one of two concurrent uses of a state through', async () => {
    const flow = await begin();
    const results = await Promise.allSettled([flows.consume(flow.state), flows.consume(flow.state), flows.consume(flow.state)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });

  it('refuses an expired state, and a state whose expiry was edited to look fresh', async () => {
    const flow = await begin();
    now += FLOW_TTL_MS + 1;
    try {
      await assert.rejects(flows.consume(flow.state), invalid(/expired/));
      const [, secret] = flow.state.split('.');
      await assert.rejects(flows.consume(`${now + 60_000}.${secret}`), invalid(/unknown/));
    } finally {
      now -= FLOW_TTL_MS + 1;
    }
  });

  it('refuses malformed and unknown states', async () => {
    for (const state of ['', 'x', `${now + 1000}.short`, `${now + 1000}.${'A'.repeat(44)}`, `${now + 1000}.${'A'.repeat(42)}/`]) {
      await assert.rejects(flows.consume(state), invalid(/malformed/));
    }
    await assert.rejects(flows.consume(`${now + 60_000}.${'A'.repeat(43)}`), invalid(/unknown/));
  });

  it('with a browser binding, refuses another browser\'s cookie or none, and spends the state anyway', async () => {
    const a = await begin();
    await assert.rejects(flows.consume(a.state, 'x'.repeat(43)), invalid(/another browser/));
    await assert.rejects(flows.consume(a.state, a.browserBinding), invalid(/already used/));
    const b = await begin();
    await assert.rejects(flows.consume(b.state, null), invalid(/another browser/));
    const c = await begin();
    assert.equal((await flows.consume(c.state, c.browserBinding)).nonce, c.nonce);
  });

  it('stores no state, nonce, verifier or binding where storage can read it', async () => {
    const flow = await begin();
    const everything = Buffer.concat((await storage.list('')).flatMap((k) => [Buffer.from(k), storage.records.values.get(k) ?? Buffer.alloc(0)]));
    for (const secret of [flow.state.split('.')[1] as string, flow.nonce, flow.codeVerifier, flow.browserBinding]) {
      assert.equal(everything.includes(Buffer.from(secret)), false);
    }
  });

  it('sweeps expired flows and keeps live ones', async () => {
    const old = await begin();
    now += FLOW_TTL_MS + 1;
    const fresh = await begin();
    try {
      assert.ok(await flows.sweepExpired() >= 1);
      assert.deepEqual((await barrier.view(MOUNTS.oidc).list('flows/')).length, 1);
      assert.equal((await flows.consume(fresh.state)).nonce, fresh.nonce);
    } finally {
      now -= FLOW_TTL_MS + 1;
    }
    await assert.rejects(flows.consume(old.state), invalid(/unknown/));
  });
});
