/**
 * Administration of operator accounts (`/v1/sys/operators`, policy paths `sys/operators/<name>`).
 *
 * Creating or resetting an account decides who can log in as it, and so who gets the policies of
 * the groups naming it (a group may name an account before it exists): both follow the conferral
 * rule (src/policy/confer.ts), or `update` on one account would be a way to any group's policies.
 * A reset and a deletion revoke the account's live login tokens.
 */
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import type { GroupStore } from '../../groups/store.js';
import type { OperatorLogins } from '../../operators/login.js';
import type { OperatorStore } from '../../operators/store.js';
import type { OperatorSummary } from '../../operators/types.js';
import type { PolicyStore } from '../../policy/store.js';
import type { TokenRecord } from '../../identity/tokens.js';
import { OperatorList, OperatorView } from '../../wire/operators.js';
import { callerToken } from '../auth.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';
import { Password, Username } from './auth-operator.js';

export interface OperatorsApiOptions {
  operators: OperatorStore;
  logins: OperatorLogins;
  groups: Pick<GroupStore, 'policiesFor'>;
  policies: Pick<PolicyStore, 'assertCanConferToOthers'>;
}

const OperatorParams = Closed({ name: Username });
const CreateBody = Closed({ name: Username, password: Password });
const ResetBody = Closed({ password: Password });
const accountPath = (name: string) => policyPath(MOUNTS.operators, name);

function view(s: OperatorSummary, revoked?: number): OperatorView {
  return {
    name: s.name, created_at: s.createdAt, password_changed_at: s.passwordChangedAt, enrolled: s.enrolled,
    recovery_codes_left: s.recoveryCodesLeft, failures: s.failures,
    ...(s.lockedUntil ? { locked_until: s.lockedUntil } : {}), ...(s.lastLoginAt ? { last_login_at: s.lastLoginAt } : {}),
    ...(revoked !== undefined ? { revoked_tokens: revoked } : {}),
  };
}

export const operatorsApi: ApiPlugin<OperatorsApiOptions> = async (app, { operators, logins, groups, policies }) => {
  /** Whoever sets the password of `name` can become it: they must be able to confer what its groups give. */
  const assertCanBecome = async (caller: TokenRecord, name: string): Promise<void> => {
    const given = (await groups.policiesFor({ operator: name })).policies;
    await policies.assertCanConferToOthers(caller, given);
  };

  route(app, {
    method: 'POST', url: '/v1/sys/operators', operation: 'sys.operators.create', secretBody: true,
    schema: { tags: ['operators'], summary: 'Create an operator account with an initial password (it logs in once its TOTP is enrolled)', body: CreateBody, response: withErrors({ 200: OperatorView }) },
    authorize: (req) => [[accountPath(req.body.name), 'create']],
    handler: async (req) => {
      req.keyhold.auditFields.operator = req.body.name;
      await assertCanBecome(callerToken(req), req.body.name);
      return view(await operators.create(req.body.name, req.body.password));
    },
  });

  listRoute(app, {
    url: '/v1/sys/operators', operation: 'sys.operators.list', tag: 'operators', summary: 'List operator accounts', schema: OperatorList, policyPath: policyPath(MOUNTS.operators),
    list: async () => ({ operators: await operators.list() }),
  });

  route(app, {
    method: 'GET', url: '/v1/sys/operators/:name', operation: 'sys.operators.read',
    schema: { tags: ['operators'], summary: 'Read an operator account (never its hashes or secrets)', params: OperatorParams, response: withErrors({ 200: OperatorView }) },
    authorize: (req) => [[accountPath(req.params.name), 'read']],
    handler: async (req) => view(await operators.describe(req.params.name)),
  });

  deleteRoute(app, {
    url: '/v1/sys/operators/:name', operation: 'sys.operators.delete', tag: 'operators', summary: 'Delete an operator account and revoke its live tokens', params: OperatorParams,
    authorize: (req) => [[accountPath(req.params.name), 'delete']],
    remove: async (req) => {
      await operators.delete(req.params.name);
      req.keyhold.auditFields.revoked_tokens = String(await logins.revokeTokens(req.params.name));
    },
  });

  route(app, {
    method: 'POST', url: '/v1/sys/operators/:name/reset', operation: 'sys.operators.reset', secretBody: true,
    schema: {
      tags: ['operators'], summary: 'Set a new password, clear the second factor, recovery codes and lockout (the person enrols again), and revoke the live tokens',
      params: OperatorParams, body: ResetBody, response: withErrors({ 200: OperatorView }),
    },
    authorize: (req) => [[accountPath(req.params.name), 'update']],
    handler: async (req) => {
      await assertCanBecome(callerToken(req), req.params.name);
      const summary = await operators.reset(req.params.name, req.body.password);
      const revoked = await logins.revokeTokens(req.params.name);
      req.keyhold.auditFields.revoked_tokens = String(revoked);
      return view(summary, revoked);
    },
  });
};
