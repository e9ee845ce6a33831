/**
 * Operator accounts on two real `keyhold server` replicas sharing one real PostgreSQL: a TOTP code
 * accepted by one replica is refused by the other (replay), and an account locked by failures on
 * one replica is locked on the other (the lock is in the account's barrier record).
 */
import { after, before, describe, it } from 'node:test';
import { startReplicas, type ReplicaSet } from '../../helpers/replicas.js';
import { apiCaller, assertError, assertOk } from '../api/api-helpers.js';
import { createEnrolled, login, PASSWORD, totp } from './support.js';

describe('operator accounts on two replicas', { timeout: 10 * 60_000 }, () => {
  let set: ReplicaSet;
  const on = (i: number) => apiCaller(() => ({ address: (set.replicas[i] as { address: string }).address, root: set.rootToken }));
  const [a, b] = [on(0), on(1)];

  before(async () => {
    set = await startReplicas(2, { operators: { lockout: { account: { threshold: 3, baseSeconds: 60, maxSeconds: 120 } } } });
    await a.asRoot('PUT', '/v1/policies/keys-read', { rules: [{ path: 'keys', capabilities: ['list'] }] });
    await a.asRoot('PUT', '/v1/sys/groups/readers', { policies: ['keys-read'], members: ['rita', 'sam'], external_groups: [] });
  });
  after(async () => set?.destroy());

  it('a code accepted by one replica is a replay on the other', async () => {
    const rita = await createEnrolled(a, 'rita');
    const code = await totp(rita.secret);
    assertOk(await login(b, { username: 'rita', password: PASSWORD, totp: code }), 200, 'on replica 1');
    assertError(await login(a, { username: 'rita', password: PASSWORD, totp: code }), 401, 'ERR_LOGIN_FAILED', 'the same code on replica 0');
  });

  it('failures on one replica lock the account on the other', async () => {
    const sam = await createEnrolled(b, 'sam');
    for (let i = 0; i < 3; i++) assertError(await login(a, { username: 'sam', password: 'not the password', totp: '123456' }), 401, 'ERR_LOGIN_FAILED');
    assertError(await login(b, { username: 'sam', password: PASSWORD, totp: await totp(sam.secret) }), 423, 'ERR_ACCOUNT_LOCKED');
  });
});
