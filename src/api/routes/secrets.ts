import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MOUNTS } from '../../barrier/mounts.js';
import { assertLogicalPath } from '../../barrier/paths.js';
import type { Runtime } from '../../core/runtime.js';
import { KeyholdError } from '../../errors.js';
import type { CompiledPolicies } from '../../policy/evaluate.js';
import { configureMetadata, listSecrets, readMetadata } from '../../secrets/metadata.js';
import { getSecret } from '../../secrets/read.js';
import { deleteSecretCompletely, deleteVersions, destroyVersions, undeleteVersions } from '../../secrets/versions.js';
import type { SecretStore } from '../../secrets/store.js';
import { putSecret } from '../../secrets/write.js';
import { MAX_SECRET_PATH_LENGTH, secretPolicyPath } from '../../secrets/types.js';
import type { Requirement } from '../context.js';
import { Closed, VersionQuery, withErrors } from '../schemas.js';

/** `*` captures the secret path; checked here so '..' or '//' never reach storage or policy. */
const PathParams = Closed({ '*': Type.String({ minLength: 1, maxLength: MAX_SECRET_PATH_LENGTH + 1 }) }); // +1: a trailing '/' on folder listings
type PathParams = Static<typeof PathParams>;
const pathOf = (req: FastifyRequest): string => {
  const path = (req.params as PathParams)['*'].replace(/\/$/, '');
  assertLogicalPath(path, 'secret path');
  return path;
};
const policyPath = (req: FastifyRequest) => secretPolicyPath(pathOf(req));

// TypeBox drops constraints on a Record's key schema (it becomes patternProperties '^(.*)$'), so
// the field-name limits are stated as propertyNames, which Ajv enforces.
const SecretData = Type.Record(Type.String(), Type.Unknown(), { maxProperties: 1024, propertyNames: { minLength: 1, maxLength: 256 } });
const PutBody = Closed({ data: SecretData, cas: Type.Optional(Type.Integer({ minimum: 0 })) });
const GetQuery = Closed({ version: Type.Optional(VersionQuery), list: Type.Optional(Type.Literal('true')) });
const Versions = Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 1000, uniqueItems: true });
const VersionsBody = Closed({ versions: Versions });
const DeleteQuery = Closed({ versions: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,999}$' })) });
const MetadataBody = Closed({ max_versions: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })), cas_required: Type.Optional(Type.Boolean()) });
const VersionMeta = Closed({ created_at: Type.String(), deleted_at: Type.Optional(Type.String()), destroyed: Type.Boolean() });
const Metadata = Closed({
  current_version: Type.Integer(), oldest_version: Type.Integer(), max_versions: Type.Integer(), cas_required: Type.Boolean(),
  created_at: Type.String(), updated_at: Type.String(), versions: Type.Record(Type.String(), VersionMeta),
});
// One closed object rather than anyOf: fast-json-stringify tries each branch of an anyOf with a
// validator on every response, which showed up as the largest cost of a secret read.
const SecretOrList = Closed({
  data: Type.Optional(SecretData), version: Type.Optional(Type.Integer()), created_at: Type.Optional(Type.String()),
  keys: Type.Optional(Type.Array(Type.String())),
}, 'a secret version ({data, version, created_at}) or, with ?list=true, a folder listing ({keys})');

/**
 * Creating and updating are separate capabilities, as in Vault, but whether the path exists is
 * looked up only for a caller holding exactly one of the two: such a caller learns whether it
 * exists, as in Vault. A caller holding both needs no look-up, and a caller holding neither is
 * refused before storage is read, with the same message whether or not the path exists (no
 * existence oracle, not even by timing).
 */
function writeRequirement(req: FastifyRequest, store: SecretStore): Requirement[] | Promise<Requirement[]> {
  const path = policyPath(req);
  const policies = req.keyhold.policies as CompiledPolicies;
  const create = policies.allowed(path, 'create');
  const update = policies.allowed(path, 'update');
  if (create && update) return [];
  if (!create && !update) throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: create or update on ${path}`);
  return store.meta(pathOf(req)).then((meta) => [[path, meta ? 'update' : 'create']]);
}

export function secretRoutes(app: FastifyInstance, runtime: Runtime): void {
  const store = runtime.secrets;

  app.get('/v1/secrets', {
    schema: { tags: ['secrets'], summary: 'List the top-level folder', response: withErrors({ 200: Closed({ keys: Type.Array(Type.String()) }) }) },
    config: { operation: 'secrets.list', authorize: () => [[MOUNTS.secrets.policy, 'list']] },
  }, async () => ({ keys: await listSecrets(store, '') }));

  app.get<{ Params: PathParams; Querystring: Static<typeof GetQuery> }>('/v1/secrets/*', {
    schema: { tags: ['secrets'], summary: 'Read a secret version (default: current), or ?list=true to list a folder', params: PathParams, querystring: GetQuery, response: withErrors({ 200: SecretOrList }) },
    config: {
      operation: 'secrets.read',
      authorize: (req) => [[policyPath(req), (req.query as Static<typeof GetQuery>).list ? 'list' : 'read']],
    },
  }, async (req) => {
    if (req.query.list) return { keys: await listSecrets(store, pathOf(req)) };
    const version = req.query.version === undefined ? undefined : Number(req.query.version);
    const secret = await getSecret(store, pathOf(req), version);
    req.keyhold.auditFields.version = String(secret.version);
    return secret;
  });

  app.put<{ Params: PathParams; Body: Static<typeof PutBody> }>('/v1/secrets/*', {
    schema: { tags: ['secrets'], summary: 'Write a new version; cas=0 only creates, cas=N only if the current version is N', params: PathParams, body: PutBody, response: withErrors({ 200: Closed({ version: Type.Integer(), created_at: Type.String() }) }) },
    config: { operation: 'secrets.write', authorize: (req) => writeRequirement(req, store) },
  }, async (req) => {
    const result = await putSecret(store, pathOf(req), req.body.data, req.body.cas);
    req.keyhold.auditFields.version = String(result.version);
    return result;
  });

  app.delete<{ Params: PathParams; Querystring: Static<typeof DeleteQuery> }>('/v1/secrets/*', {
    schema: { tags: ['secrets'], summary: 'Soft-delete the current version, or ?versions=1,2', params: PathParams, querystring: DeleteQuery, response: withErrors({ 200: Closed({ versions: Type.Array(Type.Integer()) }) }) },
    config: { operation: 'secrets.delete', authorize: (req) => [[policyPath(req), 'delete']] },
  }, async (req) => ({ versions: await deleteVersions(store, pathOf(req), req.query.versions?.split(',').map(Number)) }));

  app.post<{ Params: PathParams; Body: Static<typeof VersionsBody> }>('/v1/secret-undelete/*', {
    schema: { tags: ['secrets'], summary: 'Undelete soft-deleted versions', params: PathParams, body: VersionsBody, response: withErrors({ 200: Closed({ versions: Type.Array(Type.Integer()) }) }) },
    config: { operation: 'secrets.undelete', authorize: (req) => [[policyPath(req), 'update']] },
  }, async (req) => ({ versions: await undeleteVersions(store, pathOf(req), req.body.versions) }));

  app.post<{ Params: PathParams; Body: Static<typeof VersionsBody> }>('/v1/secret-destroy/*', {
    schema: { tags: ['secrets'], summary: 'Permanently destroy versions', params: PathParams, body: VersionsBody, response: withErrors({ 200: Closed({ versions: Type.Array(Type.Integer()) }) }) },
    config: { operation: 'secrets.destroy', authorize: (req) => [[policyPath(req), 'delete']] },
  }, async (req) => ({ versions: await destroyVersions(store, pathOf(req), req.body.versions) }));

  app.get<{ Params: PathParams }>('/v1/secret-metadata/*', {
    schema: { tags: ['secrets'], summary: 'Read version metadata', params: PathParams, response: withErrors({ 200: Metadata }) },
    config: { operation: 'secrets.metadata.read', authorize: (req) => [[policyPath(req), 'read']] },
  }, async (req) => readMetadata(store, pathOf(req)));

  app.put<{ Params: PathParams; Body: Static<typeof MetadataBody> }>('/v1/secret-metadata/*', {
    schema: { tags: ['secrets'], summary: 'Set max_versions and cas_required', params: PathParams, body: MetadataBody, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'secrets.metadata.write', authorize: (req) => [[policyPath(req), 'update']] },
  }, async (req, reply) => {
    await configureMetadata(store, pathOf(req), { maxVersions: req.body.max_versions, casRequired: req.body.cas_required });
    return reply.code(204).send();
  });

  app.delete<{ Params: PathParams }>('/v1/secret-metadata/*', {
    schema: { tags: ['secrets'], summary: 'Delete the secret with every version', params: PathParams, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'secrets.metadata.delete', authorize: (req) => [[policyPath(req), 'delete']] },
  }, async (req, reply) => {
    await deleteSecretCompletely(store, pathOf(req));
    return reply.code(204).send();
  });
}
