/**
 * The console's audit views on PostgreSQL (GET /v1/sys/audit/entries and /verify), with two real
 * replicas on one real PostgreSQL, each writing its own chain into the `audit` table: the latest
 * entries of every chain, newest last; a verdict per chain, each replica anchored on its own;
 * tampering by whoever can write the table (an edited, removed, replaced or unreadable row, a cut
 * or rewritten tail, a whole chain removed) named by chain and seq; `read` on sys/audit required;
 * bad queries refused; one verification at a time per process, within its time bound; the audit
 * page in a real Chromium showing a tampered chain as BROKEN.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { GENESIS_HASH, sealLine, sealSystemLine, type AuditEntry } from '../../../src/audit/entry.js';
import { CHAIN_TAIL, CHAIN_TAILS } from '../../../src/audit/pg-recent.js';
import { VERIFY_APPLICATION_NAME } from '../../../src/audit/pg-verify-online.js';
import { closeBrowsers, expectNoAxeViolations, launchBrowser, newContext, screenshot } from '../../helpers/browser.js';
import { killOnExit, sleep } from '../../helpers/processes.js';
import { startReplicas, type Replica, type ReplicaSet } from '../../helpers/replicas.js';
import { call, startServer, type DevServer } from '../../helpers/server.js';
import { pollUntil } from '../../helpers/wait.js';
import { signInWithToken } from '../console/support.js';

interface Row { seq: number; entry: string }
interface ChainVerdict { chain: string; ok: boolean; entries: number; checkpoints: number; this_replica: boolean; anchored: boolean; failure?: { bad_seq: number; reason: string; truncated?: boolean } }
interface Verdict { ok: boolean; entries: number; checkpoints: number; anchored: boolean; checked_at: string; failure?: { bad_seq: number; line: number; reason: string; chain?: string; truncated?: boolean }; chains: ChainVerdict[] }
interface Entry { chain: string; seq: number; time: string; type: string; path?: string; requestId?: string }

describe('the audit views on PostgreSQL replicas', { timeout: 15 * 60_000 }, () => {
  let set: ReplicaSet;
  let root: string;
  let r0: Replica;
  let r1: Replica;
  /** Each replica's chain, and keyhold init's. */
  let c0: string;
  let c1: string;
  let cInit: string;

  const on = (r: Replica | DevServer, path: string, token: string = root) => call(r.address, 'GET', path, token);
  const verify = async (r: Replica | DevServer): Promise<Verdict> => {
    const v = await on(r, '/v1/sys/audit/verify');
    assert.equal(v.status, 200, v.text);
    return v.body as Verdict;
  };
  const sql = (text: string, params: unknown[] = []) => set.pg.admin(text, params);
  /** A session of keyhold's own role (the table's owner), to hold a lock on the table. */
  const ownerSession = async () => {
    const u = new URL(set.pg.url);
    const client = new pg.Client({ host: u.hostname, port: Number(u.port), user: u.username, database: u.pathname.slice(1), password: set.pg.password });
    await client.connect();
    return client;
  };
  const rowsOf = async (chain: string, where = 'true'): Promise<Row[]> =>
    ((await sql(`SELECT seq, entry FROM audit WHERE chain = $1 AND ${where} ORDER BY seq`, [chain])).rows as Array<{ seq: string; entry: string }>).map((r) => ({ seq: Number(r.seq), entry: r.entry }));
  const putRows = (chain: string, rows: Row[]) => sql('INSERT INTO audit (chain, seq, entry) SELECT $1, s, e FROM unnest($2::bigint[], $3::text[]) AS t(s, e)', [chain, rows.map((r) => r.seq), rows.map((r) => r.entry)]);
  const chainVerdict = (v: Verdict, chain: string) => {
    const found = v.chains.find((c) => c.chain === chain);
    assert.ok(found, `chain ${chain} is not in ${JSON.stringify(v.chains.map((c) => c.chain))}`);
    return found;
  };
  /** The whole verdict is good: every chain verified, the answering replica's anchored. */
  const assertAllGood = (v: Verdict, self: string) => {
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.failure, undefined);
    assert.ok(v.chains.every((c) => c.ok && c.checkpoints >= 1 && c.failure === undefined), JSON.stringify(v.chains));
    assert.deepEqual(v.chains.filter((c) => c.this_replica).map((c) => [c.chain, c.anchored]), [[self, true]]);
    assert.ok(v.chains.filter((c) => !c.this_replica).every((c) => !c.anchored));
    assert.equal(v.anchored, true);
    assert.equal(v.entries, v.chains.reduce((n, c) => n + c.entries, 0));
    assert.equal(v.checkpoints, v.chains.reduce((n, c) => n + c.checkpoints, 0));
  };
  /** Waits until a replica's chain stops growing (its requests' records and checkpoints are in). */
  const quiet = async (chain: string) => {
    let last = -1;
    await pollUntil(`chain ${chain} to settle`, async () => {
      const now = Number((await sql('SELECT coalesce(max(seq), 0) AS n FROM audit WHERE chain = $1', [chain])).rows[0].n);
      const settled = now === last;
      last = now;
      return settled;
    }, { timeoutMs: 20_000, intervalMs: 400 });
  };

  before(async () => {
    // Checkpoints every 25 entries and otherwise only at start and close: a test knows where they are.
    set = await startReplicas(2, { audit: { checkpointEvery: 25, checkpointIntervalSeconds: 3600 } });
    root = set.rootToken;
    [r0, r1] = set.replicas as [Replica, Replica];
    c0 = (await call(r0.address, 'GET', '/v1/sys/audit/public-key')).body.chain;
    c1 = (await call(r1.address, 'GET', '/v1/sys/audit/public-key')).body.chain;
    const chains = ((await sql('SELECT DISTINCT chain FROM audit')).rows as Array<{ chain: string }>).map((r) => r.chain);
    assert.equal(chains.length, 3, 'keyhold init\'s chain and one per replica');
    cInit = chains.find((c) => c !== c0 && c !== c1) as string;
    assert.ok(c0 && c1 && c0 !== c1 && cInit);
  });
  after(async () => {
    await closeBrowsers();
    await set?.destroy();
  });

  it('entries: the latest of every chain, newest last, each naming its chain', async () => {
    for (let i = 0; i < 6; i++) {
      const r = i % 2 === 0 ? r0 : r1;
      const put = await call(r.address, 'PUT', `/v1/secrets/view/on-${r === r0 ? 'r0' : 'r1'}-${i}`, root, { data: { v: String(i) } });
      assert.equal(put.status, 200, put.text);
    }
    const all = await on(r1, '/v1/sys/audit/entries?limit=500');
    assert.equal(all.status, 200, all.text);
    const entries = all.body.entries as Entry[];
    assert.equal(all.body.unreadable, 0);
    assert.equal(all.body.chains, 3);
    // Both replicas' chains, each entry with the chain it was written to.
    for (let i = 0; i < 6; i++) {
      const writer = i % 2 === 0 ? c0 : c1;
      const path = `/v1/secrets/view/on-${i % 2 === 0 ? 'r0' : 'r1'}-${i}`;
      const forPath = entries.filter((e) => e.path === path);
      assert.deepEqual(forPath.map((e) => [e.chain, e.type]), [[writer, 'request'], [writer, 'response']], path);
    }
    assert.deepEqual([...new Set(entries.map((e) => e.chain))].sort(), [c0, c1, cInit].sort());
    // Every row's entry, as the table holds it, at its place (chain, seq).
    for (const e of entries.slice(-20)) {
      const [row] = await rowsOf(e.chain, `seq = ${e.seq}`);
      assert.deepEqual({ ...JSON.parse(row?.entry as string), chain: e.chain }, e);
    }
    // Newest last: ordered by time, then chain and seq.
    const key = (e: Entry) => `${e.time} ${e.chain} ${String(e.seq).padStart(12, '0')}`;
    assert.deepEqual(entries.map(key), entries.map(key).sort());

    // A small limit: exactly that many, and the latest ones. Every row of any chain whose time lies
    // strictly inside the answer's time span is in it (rows written after it are later).
    await quiet(c0);
    await quiet(c1);
    const few = await on(r0, '/v1/sys/audit/entries?limit=7');
    assert.equal(few.status, 200, few.text);
    const latest = few.body.entries as Entry[];
    assert.equal(latest.length, 7);
    const first = (latest[0] as Entry).time;
    const last = (latest[6] as Entry).time;
    const inside = (await sql(`SELECT chain, seq FROM audit WHERE entry::jsonb->>'time' > $1 AND entry::jsonb->>'time' < $2`, [first, last])).rows as Array<{ chain: string; seq: string }>;
    for (const r of inside) assert.ok(latest.some((e) => e.chain === r.chain && e.seq === Number(r.seq)), `row ${r.chain}/${r.seq} is missing from the latest entries`);
    assert.deepEqual(latest.map(key), latest.map(key).sort());
    // There were older entries to leave out.
    assert.ok(entries.some((e) => e.time < first));
  });

  it('verify: every chain listed and verified, each replica anchored on its own chain', async () => {
    const v0 = await verify(r0);
    assertAllGood(v0, c0);
    assert.deepEqual(v0.chains.map((c) => c.chain).sort(), [c0, c1, cInit].sort());
    const v1 = await verify(r1);
    assertAllGood(v1, c1);
    // keyhold init's chain, ended, is judged like the others (nobody holds its anchor).
    assert.deepEqual([chainVerdict(v1, cInit).ok, chainVerdict(v1, cInit).this_replica, chainVerdict(v1, cInit).anchored], [true, false, false]);
  });

  it('read on sys/audit is required for both: 403 without it, 401 without a token', async () => {
    const token = async (name: string, rules: Array<{ path: string; capabilities: string[] }>) => {
      assert.equal((await call(r0.address, 'PUT', `/v1/policies/${name}`, root, { rules })).status, 200);
      return (await call(r0.address, 'POST', '/v1/tokens', root, { policies: [name], ttl: '1h' })).body.token as string;
    };
    const listOnly = await token('audit-list', [{ path: 'sys/audit', capabilities: ['list'] }]);
    const elsewhere = await token('audit-elsewhere', [{ path: 'sys/audit/checkpoint', capabilities: ['read'] }, { path: 'secrets/*', capabilities: ['read'] }]);
    const reader = await token('audit-reader', [{ path: 'sys/audit', capabilities: ['read'] }]);
    for (const path of ['/v1/sys/audit/entries', '/v1/sys/audit/verify']) {
      for (const r of [r0, r1]) {
        for (const t of [listOnly, elsewhere]) {
          const denied = await on(r, path, t);
          assert.equal(denied.status, 403, `${path}: ${denied.text}`);
          assert.equal(denied.body.error.code, 'ERR_PERMISSION_DENIED');
        }
        const anonymous = await call(r.address, 'GET', path);
        assert.equal(anonymous.status, 401);
        assert.equal(anonymous.body.error.code, 'ERR_UNAUTHENTICATED');
        const wrong = await on(r, path, 'kh_not-a-token');
        assert.equal(wrong.status, 401);
        assert.equal(wrong.body.error.code, 'ERR_UNAUTHENTICATED');
        assert.equal((await on(r, path, reader)).status, 200);
      }
    }
  });

  it('bad queries are refused with 400 ERR_BAD_REQUEST, never served or clamped', async () => {
    const bad = [
      '/v1/sys/audit/entries?limit=0', '/v1/sys/audit/entries?limit=abc', '/v1/sys/audit/entries?limit=501', '/v1/sys/audit/entries?limit=1000',
      '/v1/sys/audit/entries?limit=-1', '/v1/sys/audit/entries?limit=1.5', '/v1/sys/audit/entries?limit=', '/v1/sys/audit/entries?limit=05',
      '/v1/sys/audit/entries?limit=1&limit=2', '/v1/sys/audit/entries?limit=10&chain=x', '/v1/sys/audit/entries?offset=3',
      '/v1/sys/audit/verify?chain=abc', '/v1/sys/audit/verify?timeout=0',
    ];
    for (const path of bad) {
      const r = await on(r0, path);
      assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
      assert.equal(r.body.error.code, 'ERR_BAD_REQUEST', path);
    }
    for (const [limit, count] of [['1', 1], ['500', undefined], ['99', undefined]] as const) {
      const r = await on(r0, `/v1/sys/audit/entries?limit=${limit}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.entries.length <= Number(limit));
      if (count !== undefined) assert.equal(r.body.entries.length, count);
    }
  });

  it('a row tampered with in the table: verify names the chain, the seq and why; the entries are still served', async () => {
    await quiet(c1);
    const rows = await rowsOf(c1);
    // A request record in the middle of replica 1's chain, covered by its later checkpoints.
    const target = rows.find((r) => r.seq > 5 && r.entry.includes('"type":"request"') && r.entry.includes('/v1/secrets/view/')) as Row;
    assert.ok(target && target.seq < (rows.at(-1) as Row).seq - 2, 'a middle row to tamper with');
    const next = rows.find((r) => r.seq === target.seq + 1) as Row;
    const cases: Array<{ what: string; tamper: () => Promise<unknown>; restore: () => Promise<unknown>; reason: RegExp; badSeq: number }> = [
      {
        what: 'a field edited (the path of a recorded request)',
        tamper: () => sql(`UPDATE audit SET entry = replace(entry, '/v1/secrets/view/', '/v1/secrets/vIew/') WHERE chain = $1 AND seq = $2`, [c1, target.seq]),
        restore: () => sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c1, target.seq, target.entry]),
        reason: /^hash does not match the entry content$/, badSeq: target.seq,
      },
      {
        what: 'a middle row deleted',
        tamper: () => sql('DELETE FROM audit WHERE chain = $1 AND seq = $2', [c1, target.seq]),
        restore: () => putRows(c1, [target]),
        reason: new RegExp(`^row seq ${target.seq + 1} follows seq ${target.seq - 1}: an entry is missing$`), badSeq: target.seq,
      },
      {
        what: 'a row replaced by a copy of its neighbour (a genuine entry in the wrong place)',
        tamper: () => sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c1, target.seq, next.entry]),
        restore: () => sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c1, target.seq, target.entry]),
        reason: new RegExp(`^seq is ${target.seq + 1}, expected ${target.seq}$`), badSeq: target.seq,
      },
      {
        what: 'a row renumbered (moved past the end)',
        tamper: () => sql('UPDATE audit SET seq = seq + 1000000 WHERE chain = $1 AND seq = $2', [c1, target.seq]),
        restore: () => sql('UPDATE audit SET seq = $2 WHERE chain = $1 AND seq = $3', [c1, target.seq, target.seq + 1_000_000]),
        reason: /an entry is missing$/, badSeq: target.seq,
      },
      {
        what: 'a row that is not an entry at all',
        tamper: () => sql(`UPDATE audit SET entry = '{"seq":' WHERE chain = $1 AND seq = $2`, [c1, target.seq]),
        restore: () => sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c1, target.seq, target.entry]),
        reason: /^not valid JSON$/, badSeq: target.seq,
      },
    ];
    for (const c of cases) {
      await c.tamper();
      try {
        // Any replica sees it; replica 0 does not write this chain.
        for (const r of [r0, r1]) {
          const v = await verify(r);
          assert.equal(v.ok, false, `${c.what}: ${JSON.stringify(v)}`);
          const broken = chainVerdict(v, c1);
          assert.equal(broken.ok, false, c.what);
          assert.equal(broken.failure?.bad_seq, c.badSeq, c.what);
          assert.match(broken.failure?.reason ?? '', c.reason, c.what);
          assert.equal(broken.entries, c.badSeq - 1, c.what);
          assert.deepEqual(v.failure, { bad_seq: c.badSeq, line: c.badSeq, reason: broken.failure?.reason, chain: c1 }, c.what);
          // The other chains are judged on their own, and are fine.
          assert.ok(v.chains.filter((x) => x.chain !== c1).every((x) => x.ok), c.what);
        }
        const entries = await on(r0, '/v1/sys/audit/entries?limit=500');
        assert.equal(entries.status, 200, `${c.what}: ${entries.text}`);
        if (c.what.startsWith('a field edited')) assert.ok(entries.body.entries.some((e: Entry) => e.chain === c1 && e.seq === target.seq && e.path?.startsWith('/v1/secrets/vIew/')), 'the edited entry is shown as it now reads');
        if (c.what.startsWith('a row that is not')) assert.equal(entries.body.unreadable, 1);
      } finally {
        await c.restore();
      }
      assertAllGood(await verify(r0), c0);
    }
  });

  it('a chain\'s tail cut or rewritten after its last checkpoint: its own replica tells, from what it committed', async () => {
    // Requests on replica 0, then its chain at rest: entries after its latest checkpoint.
    let cutFrom = 0;
    for (let attempt = 0; attempt < 5 && cutFrom === 0; attempt++) {
      assert.equal((await call(r0.address, 'GET', '/v1/secrets/view/on-r0-0', root)).status, 200);
      await quiet(c0);
      const checkpointSeq = (await on(r0, '/v1/sys/health')).body.audit.last_checkpoint.seq as number;
      const after = await rowsOf(c0, `seq > ${checkpointSeq}`);
      if (after.length >= 2) cutFrom = (after[0] as Row).seq;
    }
    assert.ok(cutFrom > 0, 'entries after the last checkpoint');
    const cut = await rowsOf(c0, `seq >= ${cutFrom}`);
    await sql('DELETE FROM audit WHERE chain = $1 AND seq >= $2', [c0, cutFrom]);
    try {
      // The chain still ends with a valid checkpoint: no one else can tell...
      const other = chainVerdict(await verify(r1), c0);
      assert.deepEqual([other.ok, other.anchored, other.this_replica], [true, false, false]);
      // ...but its writer knows what it committed.
      const v = await verify(r0);
      assert.equal(v.ok, false);
      const own = chainVerdict(v, c0);
      assert.deepEqual([own.ok, own.anchored, own.this_replica], [false, true, true]);
      assert.equal(own.failure?.bad_seq, cutFrom);
      assert.equal(own.failure?.truncated, true);
      assert.match(own.failure?.reason ?? '', new RegExp(`^chain ends at seq ${cutFrom - 1}, but this replica committed up to seq ${(cut.at(-1) as Row).seq} \\(truncated\\)$`));
      assert.deepEqual(v.failure, { bad_seq: cutFrom, line: cutFrom, reason: own.failure?.reason, chain: c0, truncated: true });
    } finally {
      await putRows(c0, cut);
    }
    assertAllGood(await verify(r0), c0);

    // Cut back past the latest checkpoint: the checkpoint this replica holds says so too.
    await quiet(c0);
    const checkpointSeq = (await on(r0, '/v1/sys/health')).body.audit.last_checkpoint.seq as number;
    const removed = await rowsOf(c0, `seq >= ${checkpointSeq}`);
    await sql('DELETE FROM audit WHERE chain = $1 AND seq >= $2', [c0, checkpointSeq]);
    try {
      const own = chainVerdict(await verify(r0), c0);
      assert.equal(own.failure?.bad_seq, checkpointSeq);
      assert.equal(own.failure?.truncated, true);
      assert.match(own.failure?.reason ?? '', new RegExp(`^log ends at seq ${checkpointSeq - 1} but the latest checkpoint covers seq ${checkpointSeq} \\(truncated\\)$`));
    } finally {
      await putRows(c0, removed);
    }
    assertAllGood(await verify(r0), c0);

    // The last entry rewritten with a hash made to match: no signature covers it yet, so the chain
    // alone verifies; only the head its writer committed shows the rewrite.
    let lastRow: { seq: string; entry: string } | undefined;
    for (let attempt = 0; attempt < 5 && !lastRow?.entry.includes('"type":"response"'); attempt++) {
      assert.equal((await call(r0.address, 'GET', '/v1/secrets/view/on-r0-2', root)).status, 200);
      await quiet(c0);
      [lastRow] = (await sql('SELECT seq, entry FROM audit WHERE chain = $1 ORDER BY seq DESC LIMIT 1', [c0])).rows as Array<{ seq: string; entry: string }>;
    }
    const original = JSON.parse(lastRow?.entry as string) as AuditEntry & { hash?: string };
    assert.equal(original.type, 'response', 'the last entry is a request\'s outcome, not a checkpoint');
    delete original.hash;
    const forged = sealLine({ ...original, outcome: { status: 404, code: 'ERR_SECRET_NOT_FOUND' } }).line;
    const seq = Number(lastRow?.seq);
    await sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c0, seq, forged]);
    try {
      const other = chainVerdict(await verify(r1), c0);
      assert.deepEqual([other.ok, other.anchored], [true, false]);
      const own = chainVerdict(await verify(r0), c0);
      assert.equal(own.ok, false);
      assert.equal(own.failure?.bad_seq, seq);
      assert.match(own.failure?.reason ?? '', new RegExp(`^differs from the entry this replica committed at seq ${seq}: the chain was rewritten between seq \\d+ and ${seq}$`));
    } finally {
      await sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c0, seq, lastRow?.entry]);
    }
    assertAllGood(await verify(r0), c0);
  });

  it('a replica\'s whole chain removed: that replica says its chain is missing', async () => {
    await quiet(c1);
    const all = await rowsOf(c1);
    await sql('DELETE FROM audit WHERE chain = $1', [c1]);
    try {
      const v = await verify(r1);
      assert.equal(v.ok, false);
      assert.deepEqual(chainVerdict(v, c1), {
        chain: c1, ok: false, entries: 0, checkpoints: 0, this_replica: true, anchored: true,
        failure: { bad_seq: 1, reason: 'this replica\'s chain is not in the audit table: its rows were removed', truncated: true },
      });
      assert.equal(v.failure?.chain, c1);
    } finally {
      // Replica 1 went on writing after its committed head: the removed rows fit back before those.
      await putRows(c1, all);
    }
    assertAllGood(await verify(r1), c1);
  });

  it('console: the audit page lists the chains, and shows a tampered one as BROKEN with its entry and reason', async () => {
    const browser = await launchBrowser();
    const page = await (await newContext(browser)).newPage();
    await signInWithToken(page, r0.address, root);
    await page.goto(`${r0.address}/ui/#/audit`);
    const verdict = page.locator('#audit-verdict');
    await verdict.waitFor();
    assert.match(await verdict.textContent() ?? '', /^Audit chains verified: 3 chains, \d+ entries, \d+ signed checkpoints, this replica's chain anchored on what it wrote\.$/);
    const chains = page.getByRole('table', { name: 'Chains in the audit table, one per server process' });
    await chains.waitFor();
    const row = (chain: string) => chains.getByRole('row').filter({ has: page.getByRole('rowheader', { name: chain }) });
    assert.match(await row(c0).textContent() ?? '', /this replica \(anchored\).*verified$/);
    assert.match(await row(c1).textContent() ?? '', /another process.*verified$/);
    // Every entry names its chain (its first 8 characters, the whole id on hover).
    const entries = page.getByRole('table', { name: /The last \d+ entries/ });
    await entries.getByRole('cell', { name: c1.slice(0, 8) }).first().waitFor();
    await entries.getByRole('cell', { name: c0.slice(0, 8) }).first().waitFor();
    await expectNoAxeViolations(page, 'audit, PostgreSQL, verified');

    await quiet(c1);
    const target = (await rowsOf(c1)).find((r) => r.seq > 5 && r.entry.includes('"type":"response"')) as Row;
    await sql(`UPDATE audit SET entry = replace(entry, '"status":200', '"status":201') WHERE chain = $1 AND seq = $2`, [c1, target.seq]);
    try {
      assert.notEqual((await rowsOf(c1, `seq = ${target.seq}`))[0]?.entry, target.entry, 'the row was changed');
      await page.getByRole('button', { name: 'Verify again' }).click();
      await page.getByText('Audit chain BROKEN').waitFor();
      assert.equal(await verdict.textContent(), `Audit chain BROKEN at entry ${target.seq} of chain ${c1}: hash does not match the entry content. 1 of 3 chains broken.`);
      assert.equal(await verdict.getAttribute('role'), 'alert');
      assert.match(await row(c1).textContent() ?? '', new RegExp(`another process.*BROKEN at entry ${target.seq}: hash does not match the entry content$`));
      assert.match(await row(c0).textContent() ?? '', /verified$/);
      await expectNoAxeViolations(page, 'audit, PostgreSQL, broken');
      await screenshot(page, 'audit-chains', false);
    } finally {
      await sql('UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2', [c1, target.seq, target.entry]);
      await page.context().close();
    }
  });

  it('one verification at a time per process: requests that come while one runs share its session and its verdict', async () => {
    const activeVerifiers = async () => Number((await sql('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [VERIFY_APPLICATION_NAME])).rows[0].n);
    // Hold the verification up: a lock on the table it must read (keyhold's own role may take it).
    const locker = await ownerSession();
    let answers: Array<Promise<{ status: number; body: any }>> = [];
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE audit IN ACCESS EXCLUSIVE MODE');
      answers = Array.from({ length: 5 }, () => call(r0.address, 'GET', '/v1/sys/audit/verify', root));
      await pollUntil('the verification waiting on the lock', async () => (await activeVerifiers()) >= 1, { timeoutMs: 10_000 });
      for (let i = 0; i < 5; i++) {
        assert.equal(await activeVerifiers(), 1, 'one session for five requests');
        await sleep(200);
      }
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      await locker.end();
    }
    const results = await Promise.all(answers);
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(new Set(results.map((r) => r.body.checked_at)).size, 1, 'one verdict');
    assertAllGood(results[0]?.body as Verdict, c0);
    await pollUntil('the verification session closed', async () => (await activeVerifiers()) === 0, { timeoutMs: 5000 });
    const again = await verify(r0);
    assert.notEqual(again.checked_at, results[0]?.body.checked_at, 'a later request runs a new verification');
  });

  describe('a verification past audit.verifyTimeoutSeconds', () => {
    let impatient: DevServer;
    const synthetic = 'c0ffee'.padEnd(32, '0');
    const activeVerifiers = async () => Number((await sql('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [VERIFY_APPLICATION_NAME])).rows[0].n);

    before(async () => {
      // A third replica on the same database and token, whose bound is one second.
      const config = parseYaml(readFileSync(set.configFile, 'utf8')) as { audit: Record<string, unknown> };
      config.audit.verifyTimeoutSeconds = 1;
      const file = join(set.dir, 'impatient.yaml');
      writeFileSync(file, stringifyYaml(config));
      impatient = await startServer(file, { SOFTHSM2_CONF: set.token.confPath }, set.dir);
      killOnExit(impatient.process);
    });
    after(async () => {
      await impatient?.stop();
      await sql('DELETE FROM audit WHERE chain = $1', [synthetic]);
    });

    it('a statement held up (a lock on the table) is stopped at the bound: 503 ERR_AUDIT_VERIFY_TIMEOUT', async () => {
      // Within the bound when nothing holds it up.
      const ok = await on(impatient, '/v1/sys/audit/verify');
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.ok, true, ok.text);
      const locker = await ownerSession();
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE audit IN ACCESS EXCLUSIVE MODE');
        const started = Date.now();
        const answer = on(impatient, '/v1/sys/audit/verify');
        // The verification gives up at one second (its answer's audit record waits for the lock).
        await pollUntil('the verification waiting on the lock', async () => (await activeVerifiers()) === 1, { timeoutMs: 5000, intervalMs: 50 });
        await pollUntil('the verification to give up', async () => (await activeVerifiers()) === 0, { timeoutMs: 5000, intervalMs: 50 });
        assert.ok(Date.now() - started < 4000, `gave up after ${Date.now() - started} ms`);
        await locker.query('COMMIT');
        const r = await answer;
        assert.equal(r.status, 503, r.text);
        assert.equal(r.body.error.code, 'ERR_AUDIT_VERIFY_TIMEOUT');
        assert.match(r.body.error.message, /longer than 1 s .*keyhold audit verify --config/);
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end();
      }
    });

    it('a table too large to check within the bound: stopped, its session closed; the entries view still reads little', async () => {
      // A long chain (written straight into the table, dated 2020): valid hashes, so the verifier reads on.
      const count = 200_000;
      let prev = GENESIS_HASH;
      for (let from = 1; from <= count; from += 20_000) {
        const seqs: number[] = [];
        const lines: string[] = [];
        for (let seq = from; seq < from + 20_000 && seq <= count; seq++) {
          const time = new Date(Date.UTC(2020, 0, 1) + seq).toISOString();
          const sealed = seq === 1
            ? sealSystemLine({ seq, time, prev, type: 'chain-start', data: { chain: synthetic, reason: 'start', host: 'synthetic', pid: 1 } })
            : sealSystemLine({ seq, time, prev, type: 'recovered', data: { reason: 'synthetic', failedAt: time } });
          seqs.push(seq);
          lines.push(sealed.line);
          prev = sealed.hash;
        }
        await putRows(synthetic, seqs.map((seq, i) => ({ seq, entry: lines[i] as string })));
      }
      await sql('ANALYZE audit');
      const started = Date.now();
      const r = await on(impatient, '/v1/sys/audit/verify');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.error.code, 'ERR_AUDIT_VERIFY_TIMEOUT');
      assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
      await pollUntil('the verification session closed', async () => (await activeVerifiers()) === 0, { timeoutMs: 5000 });
      assert.equal(Number((await sql(`SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'idle in transaction'`)).rows[0].n), 0);

      // The entries view stays bounded: the long chain's old entries are not among the latest, and
      // its queries read the primary key (one probe per chain, `limit` rows per chain), never the table.
      const entries = await on(r0, '/v1/sys/audit/entries?limit=50');
      assert.equal(entries.status, 200, entries.text);
      assert.equal(entries.body.chains, 5);
      assert.ok(entries.body.entries.every((e: Entry) => e.chain !== synthetic));
      const scans = (plan: unknown): string[] => {
        const out: string[] = [];
        const walk = (node: any) => {
          if (node['Relation Name'] === 'audit') out.push(node['Node Type']);
          for (const child of node.Plans ?? []) walk(child);
        };
        walk((plan as any)[0].Plan);
        return out;
      };
      const tails = scans((await sql(`EXPLAIN (FORMAT JSON) ${CHAIN_TAILS}`)).rows[0]['QUERY PLAN']);
      const tail = scans((await sql(`EXPLAIN (FORMAT JSON) ${CHAIN_TAIL}`, [synthetic, 500])).rows[0]['QUERY PLAN']);
      for (const node of [...tails, ...tail]) assert.match(node, /^Index (Only )?Scan( Backward)?$/, `${node} on audit: ${JSON.stringify({ tails, tail })}`);
      assert.ok(tails.length >= 2 && tail.length === 1);
    });
  });
});
