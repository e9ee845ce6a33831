/** Where the Kubernetes login configuration is kept (inside the barrier), and how it is shown. */
import type { BarrierView } from '../../barrier/view.js';
import type { KubernetesAuthConfig } from './types.js';

/** In the Kubernetes view (MOUNTS.kubernetes). */
const CONFIG_KEY = 'config';

/** The configuration without its secrets (the reviewer token, registry passwords). */
export type ConfigView = Omit<KubernetesAuthConfig, 'reviewerJwt' | 'registryCredentials'> & { reviewerJwtSet: boolean; registryCredentials?: Array<{ host: string; username: string }> };

export class KubernetesConfigStore {
  constructor(private readonly view: Pick<BarrierView, 'cached' | 'put' | 'watch'>) {}

  /**
   * Through the barrier's read cache, so with replicas it is current (a configuration another
   * replica wrote is seen by a load that starts after it) and otherwise costs no decryption.
   * Never mutate what it returns.
   */
  async load(): Promise<KubernetesAuthConfig | undefined> {
    return (await this.view.cached<KubernetesAuthConfig>(CONFIG_KEY)) ?? undefined;
  }

  /** Calls `listener` when another replica changes the configuration. */
  onChange(listener: () => void): () => void {
    return this.view.watch(CONFIG_KEY, listener);
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
