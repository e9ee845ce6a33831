/**
 * Limits and the retention sweep on two real `keyhold server` replicas sharing one real PostgreSQL:
 * protected calls racing on both replicas open exactly as many requests as the limits allow (the
 * open-request index is compare-and-set, not a count each replica makes alone), and sweeps racing
 * on both replicas delete each ended request once, without an error, each pass audited with the
 * count it deleted (the counts over both replicas' audit chains add up to the requests deleted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startReplicas, type ReplicaSet } from '../../helpers/replicas.js';
import { sleep } from '../../helpers/processes.js';
import { apiCaller, assertError, assertOk, type RawResponse } from '../api/api-helpers.js';
import { createPerson, pending, type Person } from './support.js';

const PER_REQUESTER = 10;
const TOTAL = 16;
const RETENTION_SECONDS = 1;

describe('approval limits and the retention sweep on two replicas', { timeout: 10 * 60_000 }, () => {
  let set: ReplicaSet;
  const on = (i: number) => apiCaller(() => ({ address: (set.replicas[i % 2] as { address: string }).address, root: set.rootToken }));
  let rita: Person;
  let sam: Person;
  /** Every request opened, with its requester. */
  const opened: Array<{ id: string; by: Person }> = [];

  const rotateOnBoth = (p: Person, n: number): Promise<RawResponse[]> => Promise.all(Array.from({ length: n }, (_, i) => on(i).call(p.token, 'POST', '/v1/keys/pay/rotate')));
  const statuses = (answers: RawResponse[]) => answers.map((a) => a.status).sort((a, b) => a - b);
  const storedOn = async (i: number) => (await on(i).asRoot('GET', '/v1/sys/approvals?limit=1000')).approvals as Array<{ id: string; state: string }>;
  /** The passes' audit records, of every replica's chain. */
  const passRecords = async () => ((await set.pg.admin('SELECT entry FROM audit ORDER BY chain, seq')).rows as Array<{ entry: string }>)
    .map((r) => JSON.parse(r.entry) as { operation: string; outcome?: { status: number }; fields?: Record<string, string> })
    .filter((e) => e.operation === 'approvals.sweep-pass');

  before(async () => {
    // The timer's first pass comes a minute after start: the passes below are mostly the API's, run at once on both.
    set = await startReplicas(2, { approvals: { maxOpenPerRequester: PER_REQUESTER, maxOpen: TOTAL, retentionSeconds: RETENTION_SECONDS, sweepIntervalSeconds: 3600 } });
    const a = on(0);
    await a.asRoot('PUT', '/v1/policies/keys-admin', { rules: [{ path: 'keys/*', capabilities: ['read', 'rotate'] }] });
    await a.asRoot('PUT', '/v1/sys/groups/requesters', { policies: ['keys-admin'], members: ['rita', 'sam'], external_groups: [] });
    await a.asRoot('PUT', '/v1/sys/groups/custodians', { policies: ['keys-admin'], members: ['alice'], external_groups: [] });
    rita = await createPerson(a, 'rita');
    sam = await createPerson(a, 'sam');
    await createPerson(a, 'alice');
    await a.asRoot('POST', '/v1/keys', { name: 'pay', type: 'aes256-gcm', protection: 'wrapped' });
    await a.asRoot('PUT', '/v1/sys/approvals/policies/rotate', { operations: ['key-rotate'], paths: ['keys/*'], group: 'custodians', required: 1 });
  });
  after(async () => set?.destroy());

  it('calls racing on both replicas open exactly the per-person limit', async () => {
    const answers = await rotateOnBoth(rita, 24);
    assert.deepEqual(statuses(answers), [...Array(PER_REQUESTER).fill(202), ...Array(24 - PER_REQUESTER).fill(429)], answers.map((a) => a.text.slice(0, 120)).join('\n'));
    for (const a of answers) if (a.status === 429) assertError(a, 429, 'ERR_APPROVAL_LIMIT');
    for (const a of answers) if (a.status === 202) opened.push({ id: a.body.approval.id as string, by: rita });
    assert.equal((await storedOn(1)).length, PER_REQUESTER);
  });

  it('…and exactly the total limit', async () => {
    const answers = await rotateOnBoth(sam, 24);
    const room = TOTAL - PER_REQUESTER;
    assert.deepEqual(statuses(answers), [...Array(room).fill(202), ...Array(24 - room).fill(429)], answers.map((a) => a.text.slice(0, 120)).join('\n'));
    for (const a of answers) if (a.status === 202) opened.push({ id: a.body.approval.id as string, by: sam });
    assert.equal((await storedOn(0)).length, TOTAL);
  });

  it('a request cancelled on one replica frees its place on the other', async () => {
    const first = opened[0] as { id: string; by: Person };
    assertOk(await on(0).call(first.by.token, 'POST', `/v1/sys/approvals/${first.id}/cancel`));
    opened.push({ id: pending(await on(1).call(sam.token, 'POST', '/v1/keys/pay/rotate')).id, by: sam });
    assertError(await on(1).call(sam.token, 'POST', '/v1/keys/pay/rotate'), 429, 'ERR_APPROVAL_LIMIT');
  });

  it('sweeps racing on both replicas delete each ended request once, without an error', async (t) => {
    const answers = await Promise.all(opened.map(({ id, by }, i) => on(i).call(by.token, 'POST', `/v1/sys/approvals/${id}/cancel`)));
    // The first was cancelled already.
    assert.deepEqual(statuses(answers), [...Array(opened.length - 1).fill(200), 409]);
    await sleep(RETENTION_SECONDS * 1000 + 200);
    const sweeps = await Promise.all([0, 1, 0, 1, 0, 1].map((i) => on(i).call(set.rootToken, 'POST', '/v1/sys/approvals/sweep')));
    for (const s of sweeps) assertOk(s, 200, 'sweep');
    const deleted = sweeps.map((s) => s.body.deleted as number);
    t.diagnostic(`deleted by the six passes (replicas 0, 1, 0, 1, 0, 1): ${deleted.join(', ')}`);
    for (const i of [0, 1]) assert.deepEqual(await storedOn(i), []);
    for (const { id } of opened) assertError(await on(1).call(set.rootToken, 'GET', `/v1/sys/approvals/${id}`), 404, 'ERR_APPROVAL_NOT_FOUND');
    // Each pass that deleted something is one record (a timer pass may have taken part on a slow
    // machine); their counts add up to the requests deleted, across both chains: none counted twice.
    const records = await passRecords();
    assert.equal(records.reduce((n, e) => n + Number(e.fields?.approval_sweep_deleted), 0), opened.length, `deleted by the API's passes: ${deleted.join(', ')}`);
    const api = records.filter((e) => e.fields?.approval_sweep_trigger === 'api').map((e) => Number(e.fields?.approval_sweep_deleted));
    assert.deepEqual(api.sort((a, b) => a - b), deleted.filter((n) => n > 0).sort((a, b) => a - b));
    for (const e of records) assert.equal(e.outcome?.status, 200);
    for (const r of set.replicas) assert.doesNotMatch(r.output(), /sweeping ended approval requests|request failed/);
  });

  it('the places are free again on both replicas', async () => {
    const answers = await rotateOnBoth(rita, PER_REQUESTER);
    assert.deepEqual(statuses(answers), Array(PER_REQUESTER).fill(202));
  });
});
