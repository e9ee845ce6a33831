/** Wire shapes of Kubernetes login (`/v1/auth/kubernetes/...`). */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/** A role's name. */
export const RoleName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
const Pem = Type.String({ minLength: 1, maxLength: 16_384 });
const RegistryHost = Type.String({ pattern: '^[a-z0-9.-]+(:[0-9]{1,5})?$', maxLength: 253 });

export const KubernetesConfigBody = Closed({
  issuer: Type.String({ minLength: 1, maxLength: 1024 }),
  api_server_url: Type.String({ pattern: '^https://', maxLength: 1024 }),
  ca_pem: Type.Optional(Pem),
  reviewer_jwt: Type.Optional(Type.String({ minLength: 1, maxLength: 16_384 })),
  public_keys_pem: Type.Optional(Type.Array(Pem, { minItems: 1, maxItems: 16 })),
  registry_credentials: Type.Optional(Type.Array(Closed({
    host: RegistryHost,
    username: Type.String({ minLength: 1, maxLength: 256, pattern: '^[^:]+$' }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
  }), { maxItems: 32 })),
});
export type KubernetesConfigBody = Static<typeof KubernetesConfigBody>;

/** The configuration as read back: never the reviewer token nor registry passwords. */
export const KubernetesConfigView = Closed({
  issuer: Type.String(), api_server_url: Type.String(), ca_pem: Type.Optional(Type.String()),
  reviewer_jwt_set: Type.Boolean(), public_keys_pem: Type.Optional(Type.Array(Type.String())),
  registry_credentials: Type.Optional(Type.Array(Closed({ host: Type.String(), username: Type.String() }))),
});
export type KubernetesConfigView = Static<typeof KubernetesConfigView>;

const Digest = Type.String({ pattern: '^([a-z0-9./:_-]+@)?sha256:[0-9a-f]{64}$', maxLength: 512 });
/** A role's image policy, written and read back alike. */
export const ImagePolicy = Closed({
  allowed_digests: Type.Optional(Type.Array(Digest, { maxItems: 1024, uniqueItems: true })),
  trusted_keys_pem: Type.Optional(Type.Array(Pem, { minItems: 1, maxItems: 16 })),
  insecure_registries: Type.Optional(Type.Array(RegistryHost, { maxItems: 16 })),
});
export type ImagePolicy = Static<typeof ImagePolicy>;

export const RoleView = Closed({
  name: Type.String(), bound_namespaces: Type.Array(Type.String()), bound_service_accounts: Type.Array(Type.String()), audience: Type.String(),
  max_token_age_seconds: Type.Optional(Type.Integer()), ttl_seconds: Type.Integer(), policies: Type.Array(Type.String()), require_pod_bound: Type.Boolean(),
  image_policy: Type.Optional(ImagePolicy),
});
export type RoleView = Static<typeof RoleView>;
export const RoleList = Closed({ roles: Type.Array(Type.String()) });
export type RoleList = Static<typeof RoleList>;

export const LoginBody = Closed({ role: RoleName, jwt: Type.String({ minLength: 1, maxLength: 16_384 }) });
export type LoginBody = Static<typeof LoginBody>;
export const LoginView = Closed({
  token: Type.String(), accessor: Type.String(), ttl: Type.Integer(), policies: Type.Array(Type.String()),
  identity: Closed({
    namespace: Type.String(), service_account: Type.String(), service_account_uid: Type.String(),
    pod_name: Type.Optional(Type.String()), pod_uid: Type.Optional(Type.String()), selectors: Type.Array(Type.String()),
  }),
});
export type LoginView = Static<typeof LoginView>;

const WatchView = Closed({
  synced: Type.Boolean(), error: Type.Optional(Type.String()), objects: Type.Integer(), resource_version: Type.Optional(Type.String()), lists: Type.Integer(), events: Type.Integer(),
});
export type WatchView = Static<typeof WatchView>;
export const KubernetesStatusView = Closed({
  configured: Type.Boolean(),
  pods: Type.Optional(WatchView), service_accounts: Type.Optional(WatchView),
  live_gets: Type.Optional(Type.Integer()), cache_hits: Type.Optional(Type.Integer()),
});
export type KubernetesStatusView = Static<typeof KubernetesStatusView>;
