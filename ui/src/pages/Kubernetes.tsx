/** Kubernetes login: its configuration, the login roles, and each role's image policy. */
import { encodePath, get } from '../api';
import { Facts, Loading, Message, useLoad } from '../components';

interface Role {
  name?: string; bound_namespaces: string[]; bound_service_accounts: string[]; policies: string[]; audience?: string;
  ttl_seconds?: number; max_token_age_seconds?: number; require_pod_bound?: boolean;
  image_policy?: { allowed_digests?: string[]; trusted_keys_pem?: string[]; insecure_registries?: string[] };
}

function RoleCard({ name }: { name: string }) {
  const role = useLoad(() => get<Role>(`/v1/auth/kubernetes/roles/${encodePath(name)}`), [name]);
  return (
    <li class="card" aria-labelledby={`r-${name}`}>
      <h3 id={`r-${name}`}>Role {name}</h3>
      {role.error && <Message kind="error">{role.error}</Message>}
      {role.data && (
        <Facts items={[
          ['Namespaces', role.data.bound_namespaces.join(', ')],
          ['Service accounts', role.data.bound_service_accounts.join(', ')],
          ['Policies', role.data.policies.join(', ')],
          ['Pod-bound tokens required', role.data.require_pod_bound ? 'yes' : 'no'],
          ['Token TTL', role.data.ttl_seconds ? `${role.data.ttl_seconds} s` : 'default'],
          ['Image policy', role.data.image_policy ? (
            <ul class="plain">
              {(role.data.image_policy.allowed_digests ?? []).map((d) => <li key={d}>digest <code>{d}</code></li>)}
              {(role.data.image_policy.trusted_keys_pem ?? []).map((_, i) => <li key={`k${i}`}>signature by trusted key {i + 1}</li>)}
              {(role.data.image_policy.insecure_registries ?? []).map((r) => <li key={r}>insecure registry {r}</li>)}
            </ul>
          ) : 'none (any image)'],
        ]} />
      )}
    </li>
  );
}

export function Kubernetes() {
  const config = useLoad(() => get<{ issuer?: string; api_server_url?: string; reviewer_jwt_set?: boolean }>('/v1/auth/kubernetes/config'));
  const roles = useLoad(() => get<{ roles?: string[]; keys?: string[] }>('/v1/auth/kubernetes/roles'));
  const names = roles.data?.roles ?? roles.data?.keys ?? [];
  return (
    <div>
      <section aria-labelledby="k8s-config-h">
        <h2 id="k8s-config-h">Configuration</h2>
        {config.error && <Message kind="info">{config.error}</Message>}
        {config.data && <Facts items={[['API server', config.data.api_server_url ?? '—'], ['Issuer', config.data.issuer ?? '—'], ['Reviewer token set', config.data.reviewer_jwt_set ? 'yes' : 'no']]} />}
      </section>
      <section aria-labelledby="k8s-roles-h">
        <h2 id="k8s-roles-h">Login roles and image policies</h2>
        {roles.error && <Message kind="error">{roles.error}</Message>}
        {!roles.data && !roles.error && <Loading what="roles" />}
        {roles.data && (names.length === 0 ? <p>No roles.</p> : <ul class="plain">{names.map((n) => <RoleCard key={n} name={n} />)}</ul>)}
      </section>
    </div>
  );
}
