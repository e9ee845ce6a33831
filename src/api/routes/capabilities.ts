/**
 * "What can I do": `GET /v1/sys/capabilities?path=…` answers the calling token's effective
 * capabilities on a path, from the same compiled policies the guard decides with (so the answer
 * cannot drift from the decisions). Any authenticated token may ask about itself; it learns
 * nothing about anyone else.
 */
import { Type } from '@sinclair/typebox';
import { KeyholdError } from '../../errors.js';
import { personOf } from '../../identity/person.js';
import type { CompiledPolicies } from '../../policy/evaluate.js';
import { CapabilitiesView } from '../../wire/operators.js';
import { callerToken } from '../auth.js';
import { route, type ApiPlugin } from '../route.js';
import { Closed, withErrors } from '../schemas.js';

const PATH_PATTERN = '^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$';
const Query = Closed({ path: Type.String({ pattern: PATH_PATTERN, maxLength: 512, description: 'a policy path, e.g. keys/payments or secrets/app/db' }) });

export const capabilitiesApi: ApiPlugin<object> = async (app) => {
  route(app, {
    method: 'GET', url: '/v1/sys/capabilities', operation: 'sys.capabilities',
    schema: { tags: ['sys'], summary: 'The calling token\'s capabilities on a path', querystring: Query, response: withErrors({ 200: CapabilitiesView }) },
    authorize: () => [],
    handler: async (req) => {
      const path = req.query.path;
      if (path.split('/').some((s) => s === '.' || s === '..')) throw new KeyholdError('ERR_BAD_REQUEST', 'path segments cannot be "." or ".."');
      const token = callerToken(req);
      const compiled = req.keyhold.policies as CompiledPolicies;
      const person = personOf(token);
      return {
        path,
        capabilities: [...compiled.capabilities(path)],
        policies: token.policies,
        identity: { ...(person ? { person } : {}), selectors: token.selectors ?? [], ...(token.displayName ? { display_name: token.displayName } : {}) },
      };
    },
  });
};
