import { createPublicKey } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { AuditHmac } from '../../audit/hmac.js';
import { KeyholdError, isKeyholdError } from '../../errors.js';
import type { ImagePolicy as StoredImagePolicy } from '../../identity/kubernetes/attestation.js';
import { NOT_SYNCED_RETRY_SECONDS, type KubernetesAuth } from '../../identity/kubernetes/auth.js';
import type { RegistryCredential } from '../../identity/kubernetes/types.js';
import type { WatchStatus } from '../../identity/kubernetes/watched-objects.js';
import { tokenId } from '../../identity/tokens.js';
import { assertCanChangeIdentitySource } from '../../policy/confer.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import type { PolicyStore } from '../../policy/store.js';
import {
  ImagePolicy, KubernetesConfigBody, KubernetesConfigView, KubernetesStatusView, LoginBody, LoginView, RoleList, RoleName, RoleView, type WatchView,
} from '../../wire/auth-kubernetes.js';
import { callerToken } from '../auth.js';
import { deleteRoute, getRoute, listRoute, route, type ApiPlugin } from '../route.js';
import { Closed, NoContent, withErrors } from '../schemas.js';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';

export interface KubernetesAuthApiOptions {
  kubernetesAuth: KubernetesAuth;
  /** Only to tell which of a role's policies have placeholders (writing a role confers them). */
  policies: Pick<PolicyStore, 'assertCanConferToOthers'>;
  /** Names the issued token in the login's audit record as its own records name it. */
  auditHmac: Pick<AuditHmac, 'mac'>;
}

const Glob = Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9*][a-z0-9.*-]*$' });
const TTL = Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 });
const RoleBody = Closed({
  bound_namespaces: Type.Array(Glob, { minItems: 1, maxItems: 64 }),
  bound_service_accounts: Type.Array(Glob, { minItems: 1, maxItems: 64 }),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  max_token_age_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 366 * 24 * 3600 })),
  ttl_seconds: Type.Optional(TTL),
  // The same names as everywhere else (a policy can only be stored under one): `App` or `ROOT` could
  // never exist, and a role naming one was accepted without a word and granted nothing.
  policies: Type.Array(Type.String({ pattern: POLICY_NAME_PATTERN.source }), { minItems: 1, maxItems: 64, uniqueItems: true }),
  require_pod_bound: Type.Optional(Type.Boolean()),
  image_policy: Type.Optional(ImagePolicy),
});
const RoleParams = Closed({ name: RoleName });

const CONFIG_PATH = policyPath(MOUNTS.kubernetes, 'config');
const STATUS_PATH = policyPath(MOUNTS.kubernetes, 'status');

function watchView(w: WatchStatus | undefined): WatchView | undefined {
  return w && { synced: w.synced, ...(w.error ? { error: w.error } : {}), objects: w.objects, lists: w.lists, events: w.events, ...(w.resourceVersion ? { resource_version: w.resourceVersion } : {}) };
}

function imagePolicyFrom(body: ImagePolicy): StoredImagePolicy {
  if (!body.allowed_digests?.length && !body.trusted_keys_pem?.length) throw new KeyholdError('ERR_BAD_REQUEST', 'image_policy needs allowed_digests or trusted_keys_pem');
  for (const pem of body.trusted_keys_pem ?? []) {
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa') throw new Error('not EC or RSA');
    } catch {
      throw new KeyholdError('ERR_BAD_REQUEST', 'trusted_keys_pem holds something that is not an EC or RSA public key in PEM');
    }
  }
  return {
    ...(body.allowed_digests ? { allowedDigests: body.allowed_digests } : {}),
    ...(body.trusted_keys_pem ? { trustedKeysPem: body.trusted_keys_pem } : {}),
    ...(body.insecure_registries ? { insecureRegistries: body.insecure_registries } : {}),
  };
}
const rolePolicyPath = (name: string) => policyPath(MOUNTS.kubernetes, `roles/${name}`);

function registryCredentialsFrom(list: NonNullable<KubernetesConfigBody['registry_credentials']>): RegistryCredential[] {
  const hosts = new Set<string>();
  for (const c of list) {
    if (hosts.has(c.host)) throw new KeyholdError('ERR_BAD_REQUEST', `registry_credentials names ${c.host} twice`);
    hosts.add(c.host);
  }
  return list.map((c) => ({ host: c.host, username: c.username, password: c.password }));
}

export const kubernetesAuthApi: ApiPlugin<KubernetesAuthApiOptions> = async (app, { kubernetesAuth: auth, policies, auditHmac }) => {
  route(app, {
    method: 'PUT', url: '/v1/auth/kubernetes/config', operation: 'auth.kubernetes.configure',
    schema: { tags: ['auth'], summary: 'Configure Kubernetes service-account login', body: KubernetesConfigBody, response: withErrors({ 204: NoContent }) },
    authorize: () => [[CONFIG_PATH, 'update']],
    handler: async (req, reply) => {
      const caller = callerToken(req);
      assertCanChangeIdentitySource(caller, 'the Kubernetes login configuration');
      const b = req.body;
      await auth.configure({
        issuer: b.issuer, apiServerUrl: b.api_server_url,
        ...(b.ca_pem ? { caPem: b.ca_pem } : {}), ...(b.reviewer_jwt ? { reviewerJwt: b.reviewer_jwt } : {}), ...(b.public_keys_pem ? { publicKeysPem: b.public_keys_pem } : {}),
        ...(b.registry_credentials ? { registryCredentials: registryCredentialsFrom(b.registry_credentials) } : {}),
      });
      return reply.code(204).send();
    },
  });

  getRoute(app, {
    url: '/v1/auth/kubernetes/config', operation: 'auth.kubernetes.read-config', tag: 'auth', summary: 'Read the Kubernetes login configuration (never the reviewer token)',
    schema: KubernetesConfigView, requires: [CONFIG_PATH, 'read'],
    answer: async () => {
      const c = await auth.describeConfig();
      return {
        issuer: c.issuer, api_server_url: c.apiServerUrl, reviewer_jwt_set: c.reviewerJwtSet, ...(c.caPem ? { ca_pem: c.caPem } : {}), ...(c.publicKeysPem ? { public_keys_pem: c.publicKeysPem } : {}),
        ...(c.registryCredentials ? { registry_credentials: c.registryCredentials } : {}),
      };
    },
  });

  getRoute(app, {
    url: '/v1/auth/kubernetes/status', operation: 'auth.kubernetes.status', tag: 'auth', summary: 'Pod and service-account watches: live or not, how much they hold, how logins were answered',
    schema: KubernetesStatusView, requires: [STATUS_PATH, 'read'],
    answer: async () => {
      const s = await auth.status();
      const pods = watchView(s.pods);
      const serviceAccounts = watchView(s.serviceAccounts);
      return {
        configured: s.configured,
        ...(pods ? { pods } : {}), ...(serviceAccounts ? { service_accounts: serviceAccounts } : {}),
        ...(s.liveGets !== undefined ? { live_gets: s.liveGets } : {}), ...(s.cacheHits !== undefined ? { cache_hits: s.cacheHits } : {}),
      };
    },
  });

  route(app, {
    method: 'PUT', url: '/v1/auth/kubernetes/roles/:name', operation: 'auth.kubernetes.write-role',
    schema: { tags: ['auth'], summary: 'Create or replace a Kubernetes login role', params: RoleParams, body: RoleBody, response: withErrors({ 204: NoContent }) },
    authorize: (req) => [[rolePolicyPath(req.params.name), 'update']],
    handler: async (req, reply) => {
      const b = req.body;
      // A role maps identities to policies, so writing one confers them: the same rule as token
      // creation. The whole new list must be conferrable, including policies the role already had.
      const caller = callerToken(req);
      await policies.assertCanConferToOthers(caller, b.policies);
      await auth.putRole({
        name: req.params.name, boundNamespaces: b.bound_namespaces, boundServiceAccounts: b.bound_service_accounts, audience: b.audience ?? 'keyhold',
        ...(b.max_token_age_seconds ? { maxTokenAgeSeconds: b.max_token_age_seconds } : {}), ttlSeconds: b.ttl_seconds ?? 600, policies: b.policies,
        requirePodBound: b.require_pod_bound ?? true,
        ...(b.image_policy ? { imagePolicy: imagePolicyFrom(b.image_policy) } : {}),
      });
      return reply.code(204).send();
    },
  });

  route(app, {
    method: 'GET', url: '/v1/auth/kubernetes/roles/:name', operation: 'auth.kubernetes.read-role',
    schema: { tags: ['auth'], summary: 'Read a Kubernetes login role', params: RoleParams, response: withErrors({ 200: RoleView }) },
    authorize: (req) => [[rolePolicyPath(req.params.name), 'read']],
    handler: async (req) => {
      const r = await auth.role(req.params.name);
      return {
        name: r.name, bound_namespaces: r.boundNamespaces, bound_service_accounts: r.boundServiceAccounts, audience: r.audience,
        ...(r.maxTokenAgeSeconds ? { max_token_age_seconds: r.maxTokenAgeSeconds } : {}), ttl_seconds: r.ttlSeconds, policies: r.policies, require_pod_bound: r.requirePodBound,
        ...(r.imagePolicy ? { image_policy: {
          ...(r.imagePolicy.allowedDigests ? { allowed_digests: r.imagePolicy.allowedDigests } : {}),
          ...(r.imagePolicy.trustedKeysPem ? { trusted_keys_pem: r.imagePolicy.trustedKeysPem } : {}),
          ...(r.imagePolicy.insecureRegistries ? { insecure_registries: r.imagePolicy.insecureRegistries } : {}),
        } } : {}),
      };
    },
  });

  listRoute(app, {
    url: '/v1/auth/kubernetes/roles', operation: 'auth.kubernetes.list-roles', tag: 'auth', summary: 'List Kubernetes login roles', schema: RoleList, policyPath: policyPath(MOUNTS.kubernetes, 'roles'),
    list: async () => ({ roles: await auth.listRoles() }),
  });

  deleteRoute(app, {
    url: '/v1/auth/kubernetes/roles/:name', operation: 'auth.kubernetes.delete-role', tag: 'auth', summary: 'Delete a Kubernetes login role', params: RoleParams,
    authorize: (req) => [[rolePolicyPath(req.params.name), 'delete']],
    remove: (req) => auth.deleteRole(req.params.name),
  });

  route(app, {
    method: 'POST', url: '/v1/auth/kubernetes/login', operation: 'auth.kubernetes.login',
    // No bearer token: the service-account JWT is the credential. Audited like every request, with the reason on denial.
    anonymous: true,
    schema: { tags: ['auth'], summary: 'Log in with a projected service-account token; returns a short-lived keyhold token', body: LoginBody, response: withErrors({ 200: LoginView }), security: [] },
    handler: async (req, reply) => {
      req.keyhold.auditFields.role = req.body.role;
      try {
        const result = await auth.login(req.body.role, req.body.jwt);
        req.keyhold.auditFields.selectors = result.identity.selectors.join(' ');
        // The same handle as the token's own audit records (actor.tokenId), so its uses can be traced to this login.
        req.keyhold.auditFields.issued_token = auditHmac.mac(tokenId(result.token));
        req.keyhold.auditFields.issued_accessor = result.accessor;
        const i = result.identity;
        return {
          token: result.token, accessor: result.accessor, ttl: result.ttlSeconds, policies: result.policies,
          identity: { namespace: i.namespace, service_account: i.serviceAccount, service_account_uid: i.serviceAccountUid, ...(i.podUid ? { pod_name: i.podName, pod_uid: i.podUid } : {}), selectors: i.selectors },
        };
      } catch (err) {
        const reason = err instanceof KeyholdError ? (err.details?.reason as string | undefined) ?? err.message : 'internal error';
        req.keyhold.auditFields.reason = reason;
        if (isKeyholdError(err, 'ERR_KUBERNETES_NOT_SYNCED')) void reply.header('retry-after', String(NOT_SYNCED_RETRY_SECONDS));
        throw err;
      }
    },
  });
};
