/**
 * Privilege escalation, tried as an attacker would against a real `keyhold dev` server (issue 9,
 * section 1): conferring policies the caller does not hold (tokens and Kubernetes roles), children
 * outliving or escaping their parents, orphans without the capability, lifetimes beyond the server
 * maximum, and accessors used without their capabilities. Every refusal has its status and code,
 * and changes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { auditRecords, CLI, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { apiCaller, assertError, assertOk } from './api-helpers.js';

/** The server's maximum token lifetime, set through KEYHOLD_TOKENS_MAX_TTL_SECONDS. */
const MAX_TTL_SECONDS = 86_400;
const ACCESSOR = /^kha\.[A-Za-z0-9_-]{32}$/;
const UNKNOWN_ACCESSOR = `kha.${'Q'.repeat(32)}`;
/** A signing key of the attacker's, so a login configuration naming it would accept JWTs the attacker signs. */
const ATTACKER_KEY_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

interface Minted { token: string; id: string; accessor: string; policies: string[]; expires_at: string }

let server: DevServer;
let root: string;
/** The attackers and their victims, by name. */
const t: Record<string, Minted> = {};

const { call, asRoot } = apiCaller(() => ({ address: server.address, root }));

async function mint(by: string, policies: string[], extra: Record<string, unknown> = {}): Promise<Minted> {
  const res = await call(by, 'POST', '/v1/tokens', { policies, ...extra });
  assertOk(res, 200, `create token ${JSON.stringify(policies)} ${JSON.stringify(extra)}`);
  assert.match(res.body.accessor, ACCESSOR);
  return res.body as Minted;
}

const live = async (token: string, what: string) => assertOk(await call(token, 'GET', '/v1/tokens/self'), 200, `${what} still works`);
const dead = async (token: string, what: string) => assertError(await call(token, 'GET', '/v1/tokens/self'), 401, 'ERR_UNAUTHENTICATED', `${what} is revoked`);
const lifetimeMs = (m: { expires_at: string }) => Date.parse(m.expires_at) - Date.now();
const ROLE = (policies: string[]) => ({ bound_namespaces: ['*'], bound_service_accounts: ['*'], policies });
const EXISTING_ROLE = { bound_namespaces: ['app'], bound_service_accounts: ['app'], policies: ['app'] };
const PRIVILEGED_ROLE = { bound_namespaces: ['ops'], bound_service_accounts: ['ops'], policies: ['ops'] };

before(async () => {
  server = await startDev(tempDir(), { KEYHOLD_TOKENS_MAX_TTL_SECONDS: String(MAX_TTL_SECONDS) });
  root = server.rootToken;
  const policies: Record<string, Array<{ path: string; capabilities: string[] }>> = {
    app: [{ path: 'secrets/app/*', capabilities: ['read', 'create', 'update'] }],
    ops: [{ path: 'secrets/ops/*', capabilities: ['read'] }],
    minter: [{ path: 'sys/tokens', capabilities: ['create'] }],
    orphaner: [{ path: 'sys/tokens/orphan', capabilities: ['create'] }],
    'role-writer': [{ path: 'sys/auth/kubernetes/roles/*', capabilities: ['update', 'read'] }],
    'config-writer': [{ path: 'sys/auth/kubernetes/config', capabilities: ['update', 'read'] }],
    'auth-admin': [{ path: 'sys/auth/kubernetes/*', capabilities: ['create', 'update', 'read', 'delete', 'list'] }],
    'acc-list': [{ path: 'sys/tokens/accessors', capabilities: ['list'] }],
    'acc-read': [{ path: 'sys/tokens/accessors/*', capabilities: ['read'] }],
    'acc-delete': [{ path: 'sys/tokens/accessors/*', capabilities: ['delete'] }],
    'acc-wildcard-list': [{ path: 'sys/tokens/accessors/*', capabilities: ['list', 'read'] }],
  };
  for (const [name, rules] of Object.entries(policies)) await asRoot('PUT', `/v1/policies/${name}`, { rules });
  await asRoot('PUT', '/v1/auth/kubernetes/roles/existing', EXISTING_ROLE, 204);
  await asRoot('PUT', '/v1/auth/kubernetes/roles/privileged', PRIVILEGED_ROLE, 204);
  t.roleWriter = await mint(root, ['app', 'role-writer']);
  t.configWriter = await mint(root, ['app', 'config-writer']);
  t.authAdmin = await mint(root, ['app', 'ops', 'auth-admin']);
  t.minter = await mint(root, ['app', 'minter'], { ttl: '1h' });
  t.minterOrphaner = await mint(root, ['app', 'minter', 'orphaner'], { ttl: '1h' });
  t.orphanerOnly = await mint(root, ['app', 'orphaner']);
  t.app = await mint(root, ['app']);
  t.lister = await mint(root, ['acc-list']);
  t.reader = await mint(root, ['acc-read']);
  t.deleter = await mint(root, ['acc-delete']);
  t.wildcardLister = await mint(root, ['acc-wildcard-list']);
  t.victim = await mint(root, ['app', 'ops']);
  await asRoot('PUT', '/v1/policies/acc-victim', { rules: [{ path: `sys/tokens/accessors/${t.victim.accessor}`, capabilities: ['read', 'delete'] }] });
  t.victimOnly = await mint(root, ['acc-victim']);
  t.rootSelf = { ...(await asRoot('GET', '/v1/tokens/self')), token: root };
});

after(async () => {
  if (server) {
    assert.equal(server.process.exitCode, null, 'server still running at the end');
    await server.stop();
  }
});

interface Refusal {
  name: string;
  as: () => string;
  method: string;
  path: () => string;
  json?: () => unknown;
  status: number;
  code: string;
}

const denied = { status: 403, code: 'ERR_PERMISSION_DENIED' };
const badRequest = { status: 400, code: 'ERR_BAD_REQUEST' };
const notFound = { status: 404, code: 'ERR_TOKEN_NOT_FOUND' };
const role = (name: string, body: unknown, as: () => string, what: string, outcome = denied): Refusal => ({ name: what, as, method: 'PUT', path: () => `/v1/auth/kubernetes/roles/${name}`, json: () => body, ...outcome });
const create = (what: string, as: () => string, body: Record<string, unknown>, outcome = denied): Refusal => ({ name: what, as, method: 'POST', path: () => '/v1/tokens', json: () => body, ...outcome });
const config = (what: string, as: () => string): Refusal => ({
  name: what, as, method: 'PUT', path: () => '/v1/auth/kubernetes/config',
  json: () => ({ issuer: 'https://attacker.example', api_server_url: 'https://127.0.0.1:1', public_keys_pem: [ATTACKER_KEY_PEM] }), ...denied,
});
const accessorCall = (what: string, as: () => string, method: string, accessor: () => string, outcome = denied): Refusal => ({ name: what, as, method, path: () => `/v1/tokens/accessors/${accessor()}`, ...outcome });

const REFUSALS: Refusal[] = [
  // Kubernetes roles confer policies: the same rule as tokens (on today's code, all of these got 204).
  role('pwn', ROLE(['root']), () => t.roleWriter!.token, 'role write conferring root'),
  role('pwn', ROLE(['ops']), () => t.roleWriter!.token, 'role write conferring a policy not held'),
  role('pwn', ROLE(['app', 'ops']), () => t.roleWriter!.token, 'role write conferring a held and a not-held policy'),
  role('pwn', ROLE(['app', 'root']), () => t.roleWriter!.token, 'role write conferring a held policy and root'),
  role('pwn', ROLE(['role-writer', 'minter']), () => t.roleWriter!.token, 'role write conferring its own admin policy and a minting one'),
  // Policy names are lower case wherever they are accepted: a look-alike is refused as a name, for anyone.
  role('pwn', ROLE(['Root']), () => t.roleWriter!.token, 'role write conferring a look-alike of root', badRequest),
  role('caps', ROLE(['ROOT']), () => root, 'role write by root naming ROOT (no such policy can exist)', badRequest),
  role('caps', ROLE(['App']), () => root, 'role write by root naming App beside nothing else (no such policy can exist)', badRequest),
  role('caps', ROLE(['app', 'Ops']), () => root, 'role write by root naming a held policy and one in capitals', badRequest),
  role('existing', { ...EXISTING_ROLE, policies: ['app', 'ops'] }, () => t.roleWriter!.token, 'role rewrite adding a policy not held'),
  role('existing', { ...EXISTING_ROLE, policies: ['root'] }, () => t.roleWriter!.token, 'role rewrite replacing its policies with root'),
  role('privileged', { ...PRIVILEGED_ROLE, bound_namespaces: ['*'] }, () => t.roleWriter!.token, 'role rewrite keeping a policy not held, widening who gets it'),
  role('privileged', { ...PRIVILEGED_ROLE, policies: ['ops', 'app'] }, () => t.roleWriter!.token, 'role rewrite adding a held policy beside one not held'),
  role('pwn', ROLE(['app']), () => t.app!.token, 'role write without update on the role path'),
  role('pwn', ROLE(['app']), () => t.minter!.token, 'role write by a token minting capability only'),
  // The login configuration decides who every role's identities are (whoever sets the issuer can
  // sign a login for any role, root's included): only root changes it (on today's code: 204).
  config('config write by a token with update on the config path', () => t.configWriter!.token),
  config('config write by a token administering all of Kubernetes auth and holding every role\'s policies', () => t.authAdmin!.token),
  config('config write by a role writer', () => t.roleWriter!.token),
  // Token creation: only held policies, only root confers root, orphans only with their capability.
  create('token conferring root', () => t.minter!.token, { policies: ['root'] }),
  create('token conferring a policy not held', () => t.minter!.token, { policies: ['ops'] }),
  create('token conferring a held and a not-held policy', () => t.minter!.token, { policies: ['app', 'ops'] }),
  create('token conferring root beside a held policy', () => t.minter!.token, { policies: ['app', 'root'] }),
  create('orphan without create on sys/tokens/orphan', () => t.minter!.token, { policies: ['app'], no_parent: true }),
  create('orphan without the capability, asking for root', () => t.minter!.token, { policies: ['root'], no_parent: true }),
  create('orphan with the orphan capability but no create on sys/tokens', () => t.orphanerOnly!.token, { policies: ['app'], no_parent: true }),
  create('orphan with both capabilities, conferring a policy not held', () => t.minterOrphaner!.token, { policies: ['ops'], no_parent: true }),
  create('token without create on sys/tokens', () => t.app!.token, { policies: ['app'] }),
  create('token naming its own parent', () => t.minter!.token, { policies: ['app'], parent: 'x' }, badRequest),
  create('token naming its own accessor', () => t.minter!.token, { policies: ['app'], accessor: UNKNOWN_ACCESSOR }, badRequest),
  create('no_parent that is not a boolean', () => t.minterOrphaner!.token, { policies: ['app'], no_parent: 'true' }, badRequest),
  create('ttl beyond what a request may name', () => root, { policies: ['app'], ttl: 400 * 86_400 }, badRequest),
  // Accessors: each operation needs its own capability on sys/tokens/accessors/...
  { name: 'list accessors without any capability', as: () => t.app!.token, method: 'GET', path: () => '/v1/tokens/accessors', ...denied },
  { name: 'list accessors with read on each accessor only', as: () => t.reader!.token, method: 'GET', path: () => '/v1/tokens/accessors', ...denied },
  { name: 'list accessors with list granted below the folder only', as: () => t.wildcardLister!.token, method: 'GET', path: () => '/v1/tokens/accessors', ...denied },
  accessorCall('look up an accessor without any capability', () => t.app!.token, 'GET', () => t.victim!.accessor),
  accessorCall('look up an accessor with list only', () => t.lister!.token, 'GET', () => t.victim!.accessor),
  accessorCall('look up an accessor with delete only', () => t.deleter!.token, 'GET', () => t.victim!.accessor),
  accessorCall('look up root\'s accessor with read on another accessor only', () => t.victimOnly!.token, 'GET', () => t.rootSelf!.accessor),
  accessorCall('look up its own accessor without the capability', () => t.app!.token, 'GET', () => t.app!.accessor),
  accessorCall('revoke by accessor without any capability', () => t.app!.token, 'DELETE', () => t.victim!.accessor),
  accessorCall('revoke by accessor with read only', () => t.reader!.token, 'DELETE', () => t.victim!.accessor),
  accessorCall('revoke root by accessor with list only', () => t.lister!.token, 'DELETE', () => t.rootSelf!.accessor),
  accessorCall('revoke another token with delete on one accessor only', () => t.victimOnly!.token, 'DELETE', () => t.minter!.accessor),
  accessorCall('revoke another token by accessor with only secret capabilities', () => t.app!.token, 'DELETE', () => t.roleWriter!.accessor),
  // Malformed and unknown accessors: 400 and 404 with codes, never a 5xx, even for root.
  accessorCall('look up a malformed accessor', () => root, 'GET', () => 'not-an-accessor', badRequest),
  accessorCall('look up a truncated accessor', () => root, 'GET', () => t.victim!.accessor.slice(0, -1), badRequest),
  accessorCall('revoke an over-long accessor', () => root, 'DELETE', () => `${t.victim!.accessor}A`, badRequest),
  accessorCall('look up a token used as an accessor', () => root, 'GET', () => t.victim!.token, badRequest),
  accessorCall('look up a token id used as an accessor', () => root, 'GET', () => t.victim!.id, badRequest),
  accessorCall('look up an accessor with a dot-dot segment', () => root, 'GET', () => '..%2Fself', badRequest),
  accessorCall('look up an unknown accessor', () => root, 'GET', () => UNKNOWN_ACCESSOR, notFound),
  accessorCall('revoke an unknown accessor', () => root, 'DELETE', () => UNKNOWN_ACCESSOR, notFound),
];

describe('refusals: each has its status and code, and changes nothing', () => {
  let accessorsBefore: string[];
  before(async () => {
    accessorsBefore = (await asRoot('GET', '/v1/tokens/accessors')).accessors;
  });

  for (const r of REFUSALS) {
    it(`${r.status} ${r.code}: ${r.name}`, async () => {
      const res = await call(r.as(), r.method, r.path(), r.json?.());
      assertError(res, r.status, r.code, r.name);
    });
  }

  it('nothing changed: no role written or rewritten, no token created or revoked', async () => {
    assert.deepEqual((await asRoot('GET', '/v1/auth/kubernetes/roles')).roles, ['existing', 'privileged']);
    const existing = await asRoot('GET', '/v1/auth/kubernetes/roles/existing');
    assert.deepEqual([existing.bound_namespaces, existing.policies], [EXISTING_ROLE.bound_namespaces, EXISTING_ROLE.policies]);
    const privileged = await asRoot('GET', '/v1/auth/kubernetes/roles/privileged');
    assert.deepEqual([privileged.bound_namespaces, privileged.policies], [PRIVILEGED_ROLE.bound_namespaces, PRIVILEGED_ROLE.policies]);
    assert.deepEqual((await asRoot('GET', '/v1/tokens/accessors')).accessors.sort(), [...accessorsBefore].sort());
    assertError(await call(root, 'GET', '/v1/auth/kubernetes/config'), 404, 'ERR_NOT_FOUND', 'no login configuration was written');
    for (const name of ['victim', 'minter', 'roleWriter']) await live(t[name]!.token, name);
    await live(root, 'root');
  });

  it('the table holds at least 40 negative cases', () => {
    assert.ok(REFUSALS.length >= 40, `${REFUSALS.length} cases`);
  });

  it('a role writer can still confer what it holds (the rule is not a blanket refusal)', async () => {
    assertOk(await call(t.roleWriter!.token, 'PUT', '/v1/auth/kubernetes/roles/held', ROLE(['app'])), 204);
    assertOk(await call(t.roleWriter!.token, 'PUT', '/v1/auth/kubernetes/roles/existing', { ...EXISTING_ROLE, bound_namespaces: ['app', 'app2'] }), 204, 'rewrite with held policies');
  });
});

describe('the token tree: descendants die with their ancestors', () => {
  it('a child is refused once its parent revoked itself', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter']);
    const child = await mint(parent.token, ['app']);
    await live(child.token, 'child (now cached by the server)');
    assertOk(await call(parent.token, 'DELETE', '/v1/tokens/self'), 204);
    await dead(parent.token, 'parent');
    await dead(child.token, 'child');
    assertError(await call(child.token, 'GET', '/v1/secrets/app/x'), 401, 'ERR_UNAUTHENTICATED', 'child reading a secret');
  });

  it('a grandchild is refused once its grandparent revoked itself', async () => {
    const a = await mint(t.minter!.token, ['app', 'minter']);
    const b = await mint(a.token, ['app', 'minter']);
    const c = await mint(b.token, ['app']);
    assertOk(await call(c.token, 'GET', '/v1/tokens/self'), 200, 'grandchild works (and is cached)');
    assertOk(await call(a.token, 'DELETE', '/v1/tokens/self'), 204);
    for (const [m, what] of [[a, 'grandparent'], [b, 'parent'], [c, 'grandchild']] as const) await dead(m.token, what);
  });

  it('a child is refused once its parent is revoked by accessor, and the accessors are gone', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter']);
    const child = await mint(parent.token, ['app']);
    await live(child.token, 'child (now cached by the server)');
    assertOk(await call(root, 'DELETE', `/v1/tokens/accessors/${parent.accessor}`), 204);
    await dead(parent.token, 'parent');
    await dead(child.token, 'child');
    for (const m of [parent, child]) assertError(await call(root, 'GET', `/v1/tokens/accessors/${m.accessor}`), 404, 'ERR_TOKEN_NOT_FOUND', 'revoked accessor');
    assertError(await call(root, 'DELETE', `/v1/tokens/accessors/${child.accessor}`), 404, 'ERR_TOKEN_NOT_FOUND', 'revoking it again');
    const listed: string[] = (await asRoot('GET', '/v1/tokens/accessors')).accessors;
    assert.ok(!listed.includes(parent.accessor) && !listed.includes(child.accessor), 'revoked accessors are not listed');
  });

  it('revoking a child leaves its parent alone', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter']);
    const child = await mint(parent.token, ['app']);
    assertOk(await call(child.token, 'DELETE', '/v1/tokens/self'), 204);
    await dead(child.token, 'child');
    await live(parent.token, 'parent');
  });

  it('a revoked token cannot mint', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter']);
    assertOk(await call(parent.token, 'DELETE', '/v1/tokens/self'), 204);
    assertError(await call(parent.token, 'POST', '/v1/tokens', { policies: ['app'] }), 401, 'ERR_UNAUTHENTICATED');
  });

  it('a child created while its parent is being revoked never survives it (10 rounds)', async (ctx) => {
    const outcomes = { created: 0, refused: 0 };
    for (let round = 0; round < 10; round++) {
      const parent = await mint(t.minter!.token, ['app', 'minter']);
      // Creations spread over a few ms, the revocation started among them at a different point each round.
      const attempts = Array.from({ length: 6 }, (_, i) => sleep(i * 3).then(() => call(parent.token, 'POST', '/v1/tokens', { policies: ['app'] })));
      const revocation = sleep(1 + (round % 5) * 3).then(() => (round % 2 === 0
        ? call(parent.token, 'DELETE', '/v1/tokens/self')
        : call(root, 'DELETE', `/v1/tokens/accessors/${parent.accessor}`)));
      const [results, revoked] = await Promise.all([Promise.all(attempts), revocation]);
      assertOk(revoked, 204, `round ${round}: revocation`);
      for (const res of results) {
        if (res.status === 200) {
          outcomes.created++;
          await dead(res.body.token, `round ${round}: a child created during the revocation`);
          assertError(await call(root, 'GET', `/v1/tokens/accessors/${res.body.accessor}`), 404, 'ERR_TOKEN_NOT_FOUND');
        } else {
          outcomes.refused++;
          assertError(res, 401, 'ERR_UNAUTHENTICATED', `round ${round}: a creation refused`);
        }
      }
    }
    ctx.diagnostic(`children created before the revocation and revoked with it: ${outcomes.created}; refused: ${outcomes.refused}`);
  });
});

describe('lifetimes: a child never outlives its parent, nothing outlives the server maximum', () => {
  it('a child asking for more than its parent has left gets the parent\'s expiry', async () => {
    const child = await mint(t.minter!.token, ['app'], { ttl: '365d' });
    assert.ok(Date.parse(child.expires_at) <= Date.parse(t.minter!.expires_at), `${child.expires_at} > ${t.minter!.expires_at}`);
  });

  it('a child asking for no ttl under a parent with one gets the parent\'s expiry', async () => {
    const child = await mint(t.minter!.token, ['app']);
    assert.ok(Date.parse(child.expires_at) <= Date.parse(t.minter!.expires_at), `${child.expires_at} > ${t.minter!.expires_at}`);
  });

  it('root asking for more than the server maximum gets the maximum', async () => {
    for (const ttl of ['30d', 365 * 86_400, `${MAX_TTL_SECONDS + 1}s`]) {
      const m = await mint(root, ['app'], { ttl });
      assert.ok(lifetimeMs(m) <= MAX_TTL_SECONDS * 1000, `ttl ${ttl}: expires ${m.expires_at}`);
    }
  });

  it('a root token made by root with no ttl gets the maximum, and so does an orphan', async () => {
    const made = await mint(root, ['root']);
    assert.ok(lifetimeMs(made) <= MAX_TTL_SECONDS * 1000 && lifetimeMs(made) > (MAX_TTL_SECONDS - 60) * 1000, made.expires_at);
    const self = await call(made.token, 'GET', '/v1/tokens/self');
    assert.equal(self.body.expires_at, made.expires_at);
    const orphan = await mint(t.minterOrphaner!.token, ['app'], { no_parent: true, ttl: '30d' });
    assert.ok(lifetimeMs(orphan) <= MAX_TTL_SECONDS * 1000, orphan.expires_at);
    assert.equal((await asRoot('GET', `/v1/tokens/accessors/${orphan.accessor}`)).orphan, true);
  });

  it('a child of a 2-second parent that asked for a year is refused when the parent expires', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter'], { ttl: 2 });
    const child = await mint(parent.token, ['app'], { ttl: '365d' });
    assert.ok(Date.parse(child.expires_at) <= Date.parse(parent.expires_at));
    await live(child.token, 'child before its parent expires');
    await sleep(Math.max(0, Date.parse(parent.expires_at) - Date.now()) + 300);
    await dead(child.token, 'child after its parent expired');
  });

  it('an orphan made with the capability outlives its creator\'s revocation (the capability is what allows it)', async () => {
    const creator = await mint(root, ['app', 'minter', 'orphaner']);
    const orphan = await mint(creator.token, ['app'], { no_parent: true });
    assertOk(await call(creator.token, 'DELETE', '/v1/tokens/self'), 204);
    await live(orphan.token, 'orphan');
  });
});

describe('accessors are shown, and never reveal the token', () => {
  it('a look-up by accessor names policies, expiry, parent and flags, never the token or its id', async () => {
    const parent = await mint(t.minter!.token, ['app', 'minter']);
    const child = await mint(parent.token, ['app'], { display_name: 'ci job' });
    const res = await call(t.reader!.token, 'GET', `/v1/tokens/accessors/${child.accessor}`);
    assertOk(res, 200, 'read on the accessor');
    assert.deepEqual(Object.keys(res.body).sort(), ['accessor', 'created_at', 'display_name', 'expires_at', 'orphan', 'parent_accessor', 'policies']);
    assert.equal(res.body.parent_accessor, parent.accessor);
    assert.equal(res.body.orphan, false);
    assert.deepEqual(res.body.policies, ['app']);
    assert.equal(res.body.expires_at, child.expires_at);
    for (const secret of [child.token, child.id, parent.token, parent.id]) assert.ok(!res.text.includes(secret), 'no token and no token id');
    const self = await call(child.token, 'GET', '/v1/tokens/self');
    assert.equal(self.body.accessor, child.accessor);
  });

  it('list shows accessors only', async () => {
    const res = await call(t.lister!.token, 'GET', '/v1/tokens/accessors');
    assertOk(res, 200);
    assert.ok(res.body.accessors.length > 5 && res.body.accessors.every((a: string) => ACCESSOR.test(a)));
    assert.ok(res.body.accessors.includes(t.victim!.accessor));
    for (const m of Object.values(t)) assert.ok(!res.text.includes(m.token), 'no token in the list');
  });

  it('audit records carry the caller\'s accessor, and a creation the new token\'s', async () => {
    const made = await mint(t.minter!.token, ['app']);
    await call(made.token, 'GET', '/v1/secrets/app/none');
    const records = auditRecords(server.dataDir);
    const creation = records.filter((e) => e.operation === 'tokens.create' && e.outcome?.status === 200).at(-1);
    assert.equal(creation?.actor?.accessor, t.minter!.accessor);
    assert.equal(creation?.fields?.issued_accessor, made.accessor);
    const use = records.filter((e) => e.operation === 'secrets.read').at(-1);
    assert.equal(use?.actor?.accessor, made.accessor);
    assert.ok(!JSON.stringify(records).includes(made.token), 'the token is not in the audit log');
  });

  it('the root token made at initialisation has an accessor and no expiry', async () => {
    assert.match(t.rootSelf!.accessor, ACCESSOR);
    assert.equal((t.rootSelf as Partial<Minted>).expires_at, undefined);
    const res = await asRoot('GET', `/v1/tokens/accessors/${t.rootSelf!.accessor}`);
    assert.equal(res.orphan, true);
    assert.deepEqual(res.policies, ['root']);
  });
});

describe('the keyhold CLI', () => {
  const keyhold = async (token: string, ...args: string[]) => {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: token } });
    return JSON.parse(stdout) as Record<string, unknown>;
  };

  it('token create prints the accessor; token lookup and revoke work by accessor, with the tree', async () => {
    const made = await keyhold(t.minter!.token, 'token', 'create', '--policy', 'app', 'minter', '--ttl', '10m');
    assert.match(String(made.accessor), ACCESSOR);
    const child = await mint(String(made.token), ['app']);
    const looked = await keyhold(root, 'token', 'lookup', '--accessor', String(made.accessor));
    assert.equal(looked.parent_accessor, t.minter!.accessor);
    assert.deepEqual(looked.policies, ['app', 'minter']);
    await keyhold(root, 'token', 'revoke', '--accessor', String(made.accessor));
    await dead(String(made.token), 'revoked with the CLI');
    await dead(child.token, 'its child');
    await assert.rejects(keyhold(t.app!.token, 'token', 'revoke', '--accessor', t.victim!.accessor), /ERR_PERMISSION_DENIED/);
    await live(t.victim!.token, 'victim');
  });
});
