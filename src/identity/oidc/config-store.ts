/** Where the OIDC configuration is kept (inside the barrier: it holds the client secret), and how it is shown. */
import type { BarrierView } from '../../barrier/view.js';
import type { OidcConfig } from './types.js';

const CONFIG_KEY = 'config';

/** The configuration without its secret. */
export type OidcConfigView = Omit<OidcConfig, 'clientSecret'> & { clientSecretSet: boolean };

export class OidcConfigStore {
  constructor(private readonly view: Pick<BarrierView, 'cached' | 'put' | 'delete' | 'watch'>) {}

  /** Through the barrier's read cache (current across replicas). Never mutate what it returns. */
  async load(): Promise<OidcConfig | undefined> {
    return (await this.view.cached<OidcConfig>(CONFIG_KEY)) ?? undefined;
  }

  /** Calls `listener` when another replica changes the configuration. */
  onChange(listener: () => void): () => void {
    return this.view.watch(CONFIG_KEY, listener);
  }

  async save(config: OidcConfig): Promise<void> {
    await this.view.put(CONFIG_KEY, config);
  }

  async remove(): Promise<void> {
    await this.view.delete(CONFIG_KEY);
  }
}

export function redactConfig(config: OidcConfig): OidcConfigView {
  const { clientSecret, ...rest } = config;
  return { ...rest, clientSecretSet: clientSecret.length > 0 };
}
