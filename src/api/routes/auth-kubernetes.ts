import { createPublicKey } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MOUNTS, policyPath } from '../../barrier/mounts.js';
import type { Runtime } from '../../core/runtime.js';
import { KeyholdError, isKeyholdError } from '../../errors.js';
import type { ImagePolicy } from '../../identity/kubernetes/attestation.js';
import { NOT_SYNCED_RETRY_SECONDS } from '../../identity/kubernetes/auth.js';
import type { RegistryCredential } from '../../identity/kubernetes/types.js';
import type { WatchStatus } from '../../identity/kubernetes/watched-objects.js';
import { tokenId } from '../../identity/tokens.js';
import { assertCanChangeIdentitySource, assertCanConfer } from '../../policy/confer.js';
import { POLICY_NAME_PATTERN } from '../../policy/parse.js';
import { callerToken } from '../auth.js';
import { Closed, withErrors } from '../schemas.js';

const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
const Glob = Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9*][a-z0-9.*-]*$' });
const Pem = Type.String({ minLength: 1, maxLength: 16_384 });
const ConfigBody = Closed({
  issuer: Type.String({ minLength: 1, maxLength: 1024 }),
  api_server_url: Type.String({ pattern: '^https://', maxLength: 1024 }),
  ca_pem: Type.Optional(Pem),
  reviewer_jwt: Type.Optional(Type.String({ minLength: 1, maxLength: 16_384 })),
  public_keys_pem: Type.Optional(Type.Array(Pem, { minItems: 1, maxItems: 16 })),
  registry_credentials: Type.Optional(Type.Array(Closed({
    host: Type.String({ pattern: '^[a-z0-9.-]+(:[0-9]{1,5})?$', maxLength: 253 }),
    username: Type.String({ minLength: 1, maxLength: 256, pattern: '^[^:]+$' }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
  }), { maxItems: 32 })),
});
const ConfigView = Closed({
  issuer: Type.String(), api_server_url: Type.String(), ca_pem: Type.Optional(Type.String()),
  reviewer_jwt_set: Type.Boolean(), public_keys_pem: Type.Optional(Type.Array(Type.String())),
  registry_credentials: Type.Optional(Type.Array(Closed({ host: Type.String(), username: Type.String() }))),
});
const TTL = Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 });
const Digest = Type.String({ pattern: '^([a-z0-9./:_-]+@)?sha256:[0-9a-f]{64}$', maxLength: 512 });
const ImagePolicyBody = Closed({
  allowed_digests: Type.Optional(Type.Array(Digest, { maxItems: 1024, uniqueItems: true })),
  trusted_keys_pem: Type.Optional(Type.Array(Pem, { minItems: 1, maxItems: 16 })),
  insecure_registries: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9.-]+(:[0-9]{1,5})?$', maxLength: 253 }), { maxItems: 16 })),
});
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
  image_policy: Type.Optional(ImagePolicyBody),
});
const RoleView = Closed({
  name: Type.String(), bound_namespaces: Type.Array(Type.String()), bound_service_accounts: Type.Array(Type.String()), audience: Type.String(),
  max_token_age_seconds: Type.Optional(Type.Integer()), ttl_seconds: Type.Integer(), policies: Type.Array(Type.String()), require_pod_bound: Type.Boolean(),
  image_policy: Type.Optional(ImagePolicyBody),
});
const RoleParams = Closed({ name: Name });
type RoleParams = Static<typeof RoleParams>;
const LoginBody = Closed({ role: Name, jwt: Type.String({ minLength: 1, maxLength: 16_384 }) });
const LoginView = Closed({
  token: Type.String(), accessor: Type.String(), ttl: Type.Integer(), policies: Type.Array(Type.String()),
  identity: Closed({
    namespace: Type.String(), service_account: Type.String(), service_account_uid: Type.String(),
    pod_name: Type.Optional(Type.String()), pod_uid: Type.Optional(Type.String()), selectors: Type.Array(Type.String()),
  }),
});

const WatchView = Closed({
  synced: Type.Boolean(), error: Type.Optional(Type.String()), objects: Type.Integer(), resource_version: Type.Optional(Type.String()), lists: Type.Integer(), events: Type.Integer(),
});
const StatusView = Closed({
  configured: Type.Boolean(),
  pods: Type.Optional(WatchView), service_accounts: Type.Optional(WatchView),
  live_gets: Type.Optional(Type.Integer()), cache_hits: Type.Optional(Type.Integer()),
});

const CONFIG_PATH = policyPath(MOUNTS.kubernetes, 'config');
const STATUS_PATH = policyPath(MOUNTS.kubernetes, 'status');

function watchView(w: WatchStatus | undefined): Static<typeof WatchView> | undefined {
  return w && { synced: w.synced, ...(w.error ? { error: w.error } : {}), objects: w.objects, lists: w.lists, events: w.events, ...(w.resourceVersion ? { resource_version: w.resourceVersion } : {}) };
}

function imagePolicyFrom(body: Static<typeof ImagePolicyBody>): ImagePolicy {
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

function registryCredentialsFrom(list: Array<{ host: string; username: string; password: string }>): RegistryCredential[] {
  const hosts = new Set<string>();
  for (const c of list) {
    if (hosts.has(c.host)) throw new KeyholdError('ERR_BAD_REQUEST', `registry_credentials names ${c.host} twice`);
    hosts.add(c.host);
  }
  return list.map((c) => ({ host: c.host, username: c.username, password: c.password }));
}

export function kubernetesAuthRoutes(app: FastifyInstance, runtime: Runtime): void {
  const auth = runtime.kubernetesAuth;

  app.put<{ Body: Static<typeof ConfigBody> }>('/v1/auth/kubernetes/config', {
    schema: { tags: ['auth'], summary: 'Configure Kubernetes service-account login', body: ConfigBody, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'auth.kubernetes.configure', authorize: () => [[CONFIG_PATH, 'update']] },
  }, async (req, reply) => {
    const caller = callerToken(req);
    assertCanChangeIdentitySource(caller, 'the Kubernetes login configuration');
    const b = req.body;
    await auth.configure({
      issuer: b.issuer, apiServerUrl: b.api_server_url,
      ...(b.ca_pem ? { caPem: b.ca_pem } : {}), ...(b.reviewer_jwt ? { reviewerJwt: b.reviewer_jwt } : {}), ...(b.public_keys_pem ? { publicKeysPem: b.public_keys_pem } : {}),
      ...(b.registry_credentials ? { registryCredentials: registryCredentialsFrom(b.registry_credentials) } : {}),
    });
    return reply.code(204).send();
  });

  app.get('/v1/auth/kubernetes/config', {
    schema: { tags: ['auth'], summary: 'Read the Kubernetes login configuration (never the reviewer token)', response: withErrors({ 200: ConfigView }) },
    config: { operation: 'auth.kubernetes.read-config', authorize: () => [[CONFIG_PATH, 'read']] },
  }, async () => {
    const c = await auth.describeConfig();
    return {
      issuer: c.issuer, api_server_url: c.apiServerUrl, reviewer_jwt_set: c.reviewerJwtSet, ...(c.caPem ? { ca_pem: c.caPem } : {}), ...(c.publicKeysPem ? { public_keys_pem: c.publicKeysPem } : {}),
      ...(c.registryCredentials ? { registry_credentials: c.registryCredentials } : {}),
    };
  });

  app.get('/v1/auth/kubernetes/status', {
    schema: { tags: ['auth'], summary: 'Pod and service-account watches: live or not, how much they hold, how logins were answered', response: withErrors({ 200: StatusView }) },
    config: { operation: 'auth.kubernetes.status', authorize: () => [[STATUS_PATH, 'read']] },
  }, async () => {
    const s = await auth.status();
    const pods = watchView(s.pods);
    const serviceAccounts = watchView(s.serviceAccounts);
    return {
      configured: s.configured,
      ...(pods ? { pods } : {}), ...(serviceAccounts ? { service_accounts: serviceAccounts } : {}),
      ...(s.liveGets !== undefined ? { live_gets: s.liveGets } : {}), ...(s.cacheHits !== undefined ? { cache_hits: s.cacheHits } : {}),
    };
  });

  app.put<{ Params: RoleParams; Body: Static<typeof RoleBody> }>('/v1/auth/kubernetes/roles/:name', {
    schema: { tags: ['auth'], summary: 'Create or replace a Kubernetes login role', params: RoleParams, body: RoleBody, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'auth.kubernetes.write-role', authorize: (req) => [[rolePolicyPath((req.params as RoleParams).name), 'update']] },
  }, async (req, reply) => {
    const b = req.body;
    // A role maps identities to policies, so writing one confers them: the same rule as token
    // creation. The whole new list must be conferrable, including policies the role already had.
    const caller = callerToken(req);
    const placeholderPolicies = caller.selectors?.length ? await runtime.policies.placeholderPolicies(b.policies) : undefined;
    assertCanConfer(caller, b.policies, { otherIdentities: true, ...(placeholderPolicies ? { placeholderPolicies } : {}) });
    await auth.putRole({
      name: req.params.name, boundNamespaces: b.bound_namespaces, boundServiceAccounts: b.bound_service_accounts, audience: b.audience ?? 'keyhold',
      ...(b.max_token_age_seconds ? { maxTokenAgeSeconds: b.max_token_age_seconds } : {}), ttlSeconds: b.ttl_seconds ?? 600, policies: b.policies,
      requirePodBound: b.require_pod_bound ?? true,
      ...(b.image_policy ? { imagePolicy: imagePolicyFrom(b.image_policy) } : {}),
    });
    return reply.code(204).send();
  });

  app.get<{ Params: RoleParams }>('/v1/auth/kubernetes/roles/:name', {
    schema: { tags: ['auth'], summary: 'Read a Kubernetes login role', params: RoleParams, response: withErrors({ 200: RoleView }) },
    config: { operation: 'auth.kubernetes.read-role', authorize: (req) => [[rolePolicyPath((req.params as RoleParams).name), 'read']] },
  }, async (req) => {
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
  });

  app.get('/v1/auth/kubernetes/roles', {
    schema: { tags: ['auth'], summary: 'List Kubernetes login roles', response: withErrors({ 200: Closed({ roles: Type.Array(Type.String()) }) }) },
    config: { operation: 'auth.kubernetes.list-roles', authorize: () => [[policyPath(MOUNTS.kubernetes, 'roles'), 'list']] },
  }, async () => ({ roles: await auth.listRoles() }));

  app.delete<{ Params: RoleParams }>('/v1/auth/kubernetes/roles/:name', {
    schema: { tags: ['auth'], summary: 'Delete a Kubernetes login role', params: RoleParams, response: withErrors({ 204: Type.Null() }) },
    config: { operation: 'auth.kubernetes.delete-role', authorize: (req) => [[rolePolicyPath((req.params as RoleParams).name), 'delete']] },
  }, async (req, reply) => {
    await auth.deleteRole(req.params.name);
    return reply.code(204).send();
  });

  app.post<{ Body: Static<typeof LoginBody> }>('/v1/auth/kubernetes/login', {
    schema: { tags: ['auth'], summary: 'Log in with a projected service-account token; returns a short-lived keyhold token', body: LoginBody, response: withErrors({ 200: LoginView }), security: [] },
    // No bearer token: the service-account JWT is the credential. Audited like every request, with the reason on denial.
    config: { operation: 'auth.kubernetes.login', anonymous: true },
  }, async (req, reply) => {
    req.keyhold.auditFields.role = req.body.role;
    try {
      const result = await auth.login(req.body.role, req.body.jwt);
      req.keyhold.auditFields.selectors = result.identity.selectors.join(' ');
      // The same handle as the token's own audit records (actor.tokenId), so its uses can be traced to this login.
      req.keyhold.auditFields.issued_token = runtime.auditHmac.mac(tokenId(result.token));
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
  });
}
