import { Type } from '@sinclair/typebox';
import { assertLogicalPath } from '../../barrier/paths.js';
import { KeyholdError } from '../../errors.js';
import type { CompiledPolicies } from '../../policy/evaluate.js';
import { configureMetadata, listSecrets, readMetadata, type SecretMetadataView } from '../../secrets/metadata.js';
import { getSecret, type SecretVersion as StoredSecretVersion } from '../../secrets/read.js';
import { deleteSecretCompletely, deleteVersions, destroyVersions, undeleteVersions } from '../../secrets/versions.js';
import type { SecretStore } from '../../secrets/store.js';
import { putSecret } from '../../secrets/write.js';
import { MAX_SECRET_PATH_LENGTH, secretPolicyPath } from '../../secrets/types.js';
import {
  SecretList, SecretMetadata, SecretMetadataBody, SecretOrList, SecretPutBody, SecretVersions, SecretVersionsBody, SecretWritten, type SecretVersion,
} from '../../wire/secrets.js';
import type { Requirement } from '../context.js';
import { deleteRoute, listRoute, route, type ApiPlugin, type TypedRequest } from '../route.js';
import { Closed, NoContent, VersionQuery, withErrors } from '../schemas.js';
import type { SameType } from '../same-type.js';
import { MOUNTS } from '../../barrier/mounts.js';

// The secrets domain declares the shapes it answers with; they must be the wire schemas' types.
const _version: SameType<StoredSecretVersion, SecretVersion> = true;
const _metadata: SameType<SecretMetadataView, SecretMetadata> = true;
const _written: SameType<Awaited<ReturnType<typeof putSecret>>, SecretWritten> = true;

export interface SecretsApiOptions {
  secrets: SecretStore;
}

/** `*` captures the secret path; checked here so '..' or '//' never reach storage or policy. */
const PathParams = Closed({ '*': Type.String({ minLength: 1, maxLength: MAX_SECRET_PATH_LENGTH + 1 }) }); // +1: a trailing '/' on folder listings
const pathOf = (req: { params: { '*': string } }): string => {
  const path = req.params['*'].replace(/\/$/, '');
  assertLogicalPath(path, 'secret path');
  return path;
};
const policyPath = (req: { params: { '*': string } }) => secretPolicyPath(pathOf(req));

const GetQuery = Closed({ version: Type.Optional(VersionQuery), list: Type.Optional(Type.Literal('true')) });
const DeleteQuery = Closed({ versions: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,999}$' })) });

const WriteSchema = { tags: ['secrets'], summary: 'Write a new version; cas=0 only creates, cas=N only if the current version is N', params: PathParams, body: SecretPutBody, response: withErrors({ 200: SecretWritten }) };

/**
 * Creating and updating are separate capabilities, as in Vault, but whether the path exists is
 * looked up only for a caller holding exactly one of the two: such a caller learns whether it
 * exists, as in Vault. A caller holding both needs no look-up, and a caller holding neither is
 * refused before storage is read, with the same message whether or not the path exists (no
 * existence oracle, not even by timing).
 */
function writeRequirement(req: TypedRequest<typeof WriteSchema>, store: SecretStore): Requirement[] | Promise<Requirement[]> {
  const path = policyPath(req);
  const policies = req.keyhold.policies as CompiledPolicies;
  const create = policies.allowed(path, 'create');
  const update = policies.allowed(path, 'update');
  if (create && update) return [];
  if (!create && !update) throw new KeyholdError('ERR_PERMISSION_DENIED', `permission denied: create or update on ${path}`);
  return store.meta(pathOf(req)).then((meta) => [[path, meta ? 'update' : 'create']]);
}

export const secretsApi: ApiPlugin<SecretsApiOptions> = async (app, { secrets: store }) => {
  listRoute(app, {
    url: '/v1/secrets', operation: 'secrets.list', tag: 'secrets', summary: 'List the top-level folder', schema: SecretList, policyPath: MOUNTS.secrets.policy,
    list: async () => ({ keys: await listSecrets(store, '') }),
  });

  route(app, {
    method: 'GET', url: '/v1/secrets/*', operation: 'secrets.read',
    schema: { tags: ['secrets'], summary: 'Read a secret version (default: current), or ?list=true to list a folder', params: PathParams, querystring: GetQuery, response: withErrors({ 200: SecretOrList }) },
    authorize: (req) => [[policyPath(req), req.query.list ? 'list' : 'read']],
    handler: async (req) => {
      if (req.query.list) return { keys: await listSecrets(store, pathOf(req)) };
      const version = req.query.version === undefined ? undefined : Number(req.query.version);
      const secret = await getSecret(store, pathOf(req), version);
      req.keyhold.auditFields.version = String(secret.version);
      return secret;
    },
  });

  route(app, {
    method: 'PUT', url: '/v1/secrets/*', operation: 'secrets.write',
    schema: WriteSchema,
    authorize: (req) => writeRequirement(req, store),
    handler: async (req) => {
      const result = await putSecret(store, pathOf(req), req.body.data, req.body.cas);
      req.keyhold.auditFields.version = String(result.version);
      return result;
    },
  });

  route(app, {
    method: 'DELETE', url: '/v1/secrets/*', operation: 'secrets.delete',
    schema: { tags: ['secrets'], summary: 'Soft-delete the current version, or ?versions=1,2', params: PathParams, querystring: DeleteQuery, response: withErrors({ 200: SecretVersions }) },
    authorize: (req) => [[policyPath(req), 'delete']],
    handler: async (req) => ({ versions: await deleteVersions(store, pathOf(req), req.query.versions?.split(',').map(Number)) }),
  });

  route(app, {
    method: 'POST', url: '/v1/secret-undelete/*', operation: 'secrets.undelete',
    schema: { tags: ['secrets'], summary: 'Undelete soft-deleted versions', params: PathParams, body: SecretVersionsBody, response: withErrors({ 200: SecretVersions }) },
    authorize: (req) => [[policyPath(req), 'update']],
    handler: async (req) => ({ versions: await undeleteVersions(store, pathOf(req), req.body.versions) }),
  });

  route(app, {
    method: 'POST', url: '/v1/secret-destroy/*', operation: 'secrets.destroy',
    schema: { tags: ['secrets'], summary: 'Permanently destroy versions', params: PathParams, body: SecretVersionsBody, response: withErrors({ 200: SecretVersions }) },
    authorize: (req) => [[policyPath(req), 'delete']],
    handler: async (req) => ({ versions: await destroyVersions(store, pathOf(req), req.body.versions) }),
  });

  route(app, {
    method: 'GET', url: '/v1/secret-metadata/*', operation: 'secrets.metadata.read',
    schema: { tags: ['secrets'], summary: 'Read version metadata', params: PathParams, response: withErrors({ 200: SecretMetadata }) },
    authorize: (req) => [[policyPath(req), 'read']],
    handler: async (req) => readMetadata(store, pathOf(req)),
  });

  route(app, {
    method: 'PUT', url: '/v1/secret-metadata/*', operation: 'secrets.metadata.write',
    schema: { tags: ['secrets'], summary: 'Set max_versions and cas_required', params: PathParams, body: SecretMetadataBody, response: withErrors({ 204: NoContent }) },
    authorize: (req) => [[policyPath(req), 'update']],
    handler: async (req, reply) => {
      await configureMetadata(store, pathOf(req), { maxVersions: req.body.max_versions, casRequired: req.body.cas_required });
      return reply.code(204).send();
    },
  });

  deleteRoute(app, {
    url: '/v1/secret-metadata/*', operation: 'secrets.metadata.delete', tag: 'secrets', summary: 'Delete the secret with every version', params: PathParams,
    authorize: (req) => [[policyPath(req), 'delete']],
    remove: (req) => deleteSecretCompletely(store, pathOf(req)),
  });
};
