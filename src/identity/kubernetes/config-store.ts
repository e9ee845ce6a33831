/** Where the Kubernetes login configuration is kept (inside the barrier), and how it is shown. */
import type { Barrier } from '../../barrier/barrier.js';
import type { KubernetesAuthConfig } from './types.js';

const CONFIG_PATH = 'auth/kubernetes/config';

/** The configuration without its secrets (the reviewer token, registry passwords). */
export type ConfigView = Omit<KubernetesAuthConfig, 'reviewerJwt' | 'registryCredentials'> & { reviewerJwtSet: boolean; registryCredentials?: Array<{ host: string; username: string }> };

export class KubernetesConfigStore {
  constructor(private readonly barrier: Pick<Barrier, 'getJson' | 'putJson'>) {}

  async load(): Promise<KubernetesAuthConfig | undefined> {
    return (await this.barrier.getJson<KubernetesAuthConfig>(CONFIG_PATH)) ?? undefined;
  }

  async save(config: KubernetesAuthConfig): Promise<void> {
    await this.barrier.putJson(CONFIG_PATH, config);
  }
}

export function redactConfig(config: KubernetesAuthConfig): ConfigView {
  const { reviewerJwt, registryCredentials, ...rest } = config;
  return {
    ...rest, reviewerJwtSet: reviewerJwt !== undefined,
    ...(registryCredentials ? { registryCredentials: registryCredentials.map(({ host, username }) => ({ host, username })) } : {}),
  };
}
