/**
 * Groups (`/v1/sys/groups`, policy paths `sys/groups/<name>`). Writing a group maps people to its
 * policies, so it follows the conferral rule (src/policy/confer.ts) on the whole new list: only a
 * holder of a policy can map a group to it, only a holder of root to root. A PUT replaces the
 * group, so adding oneself as a member of a group is a write that needs all of its policies.
 */
import { Type } from '@sinclair/typebox';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import { EXTERNAL_GROUP_PATTERN, GROUP_NAME_PATTERN, MAX_GROUP_ENTRIES, type GroupRecord, type GroupStore } from '../../groups/store.js';
import { OPERATOR_NAME_PATTERN } from '../../operators/types.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import type { PolicyStore } from '../../policy/store.js';
import { GroupList, GroupView } from '../../wire/operators.js';
import { callerToken } from '../auth.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';

export interface GroupsApiOptions {
  groups: GroupStore;
  policies: Pick<PolicyStore, 'assertCanConferToOthers'>;
}

const GroupParams = Closed({ name: Type.String({ pattern: GROUP_NAME_PATTERN.source, maxLength: 63 }) });
const list = (pattern: RegExp, maxLength: number) => Type.Array(Type.String({ pattern: pattern.source, maxLength }), { maxItems: MAX_GROUP_ENTRIES, uniqueItems: true });
const GroupBody = Closed({
  policies: list(POLICY_NAME_PATTERN, 64),
  members: list(OPERATOR_NAME_PATTERN, 63),
  external_groups: list(EXTERNAL_GROUP_PATTERN, 255),
});
const groupPath = (name: string) => policyPath(MOUNTS.groups, name);
const view = (g: GroupRecord): GroupView => ({ name: g.name, policies: g.policies, members: g.members, external_groups: g.externalGroups });

export const groupsApi: ApiPlugin<GroupsApiOptions> = async (app, { groups, policies }) => {
  listRoute(app, {
    url: '/v1/sys/groups', operation: 'sys.groups.list', tag: 'groups', summary: 'List groups', schema: GroupList, policyPath: policyPath(MOUNTS.groups),
    list: async () => ({ groups: await groups.list() }),
  });

  route(app, {
    method: 'PUT', url: '/v1/sys/groups/:name', operation: 'sys.groups.write',
    schema: { tags: ['groups'], summary: 'Create or replace a group: its policies, operator members and SSO group names', params: GroupParams, body: GroupBody, response: withErrors({ 200: GroupView }) },
    authorize: (req) => [[groupPath(req.params.name), 'update']],
    handler: async (req) => {
      const caller = callerToken(req);
      const b = req.body;
      await policies.assertCanConferToOthers(caller, b.policies);
      req.keyhold.auditFields.policies = b.policies.join(',');
      return view(await groups.put({ name: req.params.name, policies: b.policies, members: b.members, externalGroups: b.external_groups }));
    },
  });

  route(app, {
    method: 'GET', url: '/v1/sys/groups/:name', operation: 'sys.groups.read',
    schema: { tags: ['groups'], summary: 'Read a group', params: GroupParams, response: withErrors({ 200: GroupView }) },
    authorize: (req) => [[groupPath(req.params.name), 'read']],
    handler: async (req) => view(await groups.get(req.params.name)),
  });

  deleteRoute(app, {
    url: '/v1/sys/groups/:name', operation: 'sys.groups.delete', tag: 'groups', summary: 'Delete a group', params: GroupParams,
    authorize: (req) => [[groupPath(req.params.name), 'delete']],
    remove: (req) => groups.delete(req.params.name),
  });
};
