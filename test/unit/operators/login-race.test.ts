/**
 * Red team: a login racing an administrator's reset or deletion of its account. The login's check
 * passed (old password) and committed before the reset; the reset then revoked the tokens it could
 * list; the login's token, created after that list, survived the reset that was meant to end every
 * session of the account. Real barrier (SQLite), real stores; the login is held between its check
 * and its token by the group look-up, which is where a slow storage read puts it in production.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Barrier } from '../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../src/errors.js';
import { GroupStore } from '../../../src/groups/store.js';
import { tokenViews } from '../../../src/identity/token-paths.js';
import { TokenStore } from '../../../src/identity/tokens.js';
import { OperatorLogins } from '../../../src/operators/login.js';
import { OperatorStore } from '../../../src/operators/store.js';
import { totpCodeAt } from '../../../src/operators/totp.js';
import { sqliteFile } from '../barrier/support.js';

const PASSWORD = 'a long enough password';

async function setUp(what: string) {
  const barrier = new Barrier(sqliteFile(what).open(), randomBytes(32));
  const operators = new OperatorStore(barrier.view(MOUNTS.operators));
  const groups = new GroupStore(barrier.view(MOUNTS.groups));
  const tokens = new TokenStore(tokenViews(barrier));
  await groups.put({ name: 'readers', policies: ['keys-read'], members: ['hana'], externalGroups: [] });
  await operators.create('hana', PASSWORD);
  const { uri } = await operators.beginEnrolment('hana', PASSWORD);
  const secret = new URL(uri).searchParams.get('secret') as string;
  const { recoveryCodes } = await operators.confirmEnrolment('hana', PASSWORD, await totpCodeAt(secret, Date.now() - 30_000));
  // The login pauses at its group look-up until `release` is called.
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let reached!: () => void;
  const atGate = new Promise<void>((r) => { reached = r; });
  const slowGroups = { policiesFor: async (p: Parameters<GroupStore['policiesFor']>[0]) => { reached(); await gate; return groups.policiesFor(p); } };
  const logins = new OperatorLogins(operators, slowGroups, tokens, barrier.view(MOUNTS.operatorTokens));
  return { operators, tokens, logins, recoveryCodes, release, atGate };
}

describe('red team: a login racing a reset or deletion of its account', () => {
  for (const [what, end] of [
    ['reset', (o: OperatorStore) => o.reset('hana', 'the administrator\'s new password').then(() => undefined)],
    ['deletion', (o: OperatorStore) => o.delete('hana')],
  ] as const) {
    it(`gets no live token when a ${what} lands between its check and its token`, async () => {
      const s = await setUp(`login-race-${what}`);
      const login = s.logins.login('hana', PASSWORD, { recoveryCode: s.recoveryCodes[0] as string }, '192.0.2.1');
      await s.atGate; // the check passed and was committed
      await end(s.operators);
      await s.logins.revokeTokens('hana'); // what the route does after a reset or deletion
      s.release();
      const outcome = await login.then((r) => r.token, (e: unknown) => e);
      if (typeof outcome === 'string') {
        await assert.rejects(s.tokens.lookup(outcome), (e: unknown) => isKeyholdError(e, 'ERR_UNAUTHENTICATED'), `the login's token outlived the ${what}`);
      } else {
        assert.ok(isKeyholdError(outcome, 'ERR_LOGIN_FAILED'), String(outcome));
      }
    });
  }
});
