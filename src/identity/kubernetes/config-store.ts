/** Where the Kubernetes login configuration is kept (inside the barrier), and how it is shown. */
import type { BarrierView } from '../../barrier/view.js';
import type { KubernetesAuthConfig } from './types.js';

/** In the Kubernetes view (MOUNTS.kubernetes). */
const CONFIG_KEY = 'config';

/** The configuration without its secrets (the reviewer token, registry passwords). */
export type ConfigView = Omit<KubernetesAuthConfig, 'reviewerJwt' | 'registryCredentials'> & { reviewerJwtSet: boolean; registryCredentials?: Array<{ host: string; username: string }> };

export class KubernetesConfigStore {
  constructor(private readonly view: Pick<BarrierView, 'get' | 'put'>) {}

  async load(): Promise<KubernetesAuthConfig | undefined> {
    return (await this.view.get<KubernetesAuthConfig>(CONFIG_KEY)) ?? undefined;
  }

  async save(config: KubernetesAuthConfig): Promise<void> {
    await this.view.put(CONFIG_KEY, config);
  }
}

export function redactConfig(config: KubernetesAuthConfig): ConfigView {
  const { reviewerJwt, registryCredentials, ...rest } = config;
  return {
    ...rest, reviewerJwtSet: reviewerJwt !== undefined,
    ...(registryCredentials ? { registryCredentials: registryCredentials.map(({ host, username }) => ({ host, username })) } : {}),
  };
}
