import { Type } from '@sinclair/typebox';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import type { PolicyStore } from '../../policy/store.js';
import { PolicyBody, PolicyList, PolicyView } from '../../wire/policies.js';
import { deleteRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';

export interface PoliciesApiOptions {
  policies: PolicyStore;
}

const PolicyParams = Closed({ name: Type.String({ pattern: POLICY_NAME_PATTERN.source }) });
const namedPolicyPath = (name: string) => policyPath(MOUNTS.policies, name);

export const policiesApi: ApiPlugin<PoliciesApiOptions> = async (app, { policies }) => {
  listRoute(app, {
    url: '/v1/policies', operation: 'policies.list', tag: 'policies', summary: 'List policy names', schema: PolicyList, policyPath: policyPath(MOUNTS.policies),
    list: async () => ({ policies: await policies.list() }),
  });

  route(app, {
    method: 'PUT', url: '/v1/policies/:name', operation: 'policies.write',
    schema: { tags: ['policies'], summary: 'Create or replace a policy', params: PolicyParams, body: PolicyBody, response: withErrors({ 200: PolicyView }) },
    authorize: (req) => [[namedPolicyPath(req.params.name), 'update']],
    handler: async (req) => policies.put(req.params.name, req.body),
  });

  route(app, {
    method: 'GET', url: '/v1/policies/:name', operation: 'policies.read',
    schema: { tags: ['policies'], summary: 'Read a policy', params: PolicyParams, response: withErrors({ 200: PolicyView }) },
    authorize: (req) => [[namedPolicyPath(req.params.name), 'read']],
    handler: async (req) => policies.get(req.params.name),
  });

  deleteRoute(app, {
    url: '/v1/policies/:name', operation: 'policies.delete', tag: 'policies', summary: 'Delete a policy', params: PolicyParams,
    authorize: (req) => [[namedPolicyPath(req.params.name), 'delete']],
    remove: (req) => policies.delete(req.params.name),
  });
};
