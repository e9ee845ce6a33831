import { KeyholdError } from '../errors.js';
import { memberConfigs, type HsmConfig, type HsmMemberConfig, type HsmSettings } from './config.js';
import { watchEndpointFile, readEndpointMembers, type EndpointWatch } from './endpoint-file.js';
import type { MemberSpec } from './member.js';
import { ModuleCopies } from './module-copies.js';
import { Pkcs11Hsm, type Pkcs11HsmOptions } from './pkcs11-hsm.js';
import { HsmPool } from './pool.js';

export interface OpenHsmOptions extends Pick<Pkcs11HsmOptions, 'warn' | 'withoutCapabilities'> {
  /** Period of the background probe of healthy members (default 1000 ms). */
  probeIntervalMs?: number;
}

export type Pkcs11Pool = HsmPool<HsmMemberConfig>;

/**
 * Opens the HSM the product uses (server, KMS plugin direct mode, `keyhold dev`, CLI): an HsmPool
 * over the configured members, whatever the form of the configuration.
 */
export async function openHsm(settings: HsmSettings, options: OpenHsmOptions = {}): Promise<Pkcs11Pool> {
  const copies = new ModuleCopies(settings.moduleCopyDir);
  /** label → CKA_ID, shared by every connection of the cluster and kept across reconnects. */
  const keyIds = new Map<string, Buffer>();
  let watch: EndpointWatch | undefined;
  const fromFile = settings.endpoints?.file;
  if (settings.endpoints && !fromFile) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap is not watched by this build: mount the ConfigMap and set hsm.endpoints.file to its endpoints.json');
  const initial = fromFile ? readEndpointMembers(fromFile, settings) : memberConfigs(settings);
  const pool = await HsmPool.open<HsmMemberConfig>(initial, {
    log: options.warn,
    probeIntervalMs: options.probeIntervalMs,
    spec: (config, others) => pkcs11Member(config, others, copies, keyIds, options),
    onClose: () => {
      watch?.close();
      copies.close();
    },
  });
  if (fromFile) watch = watchEndpointFile(fromFile, settings, pool, options.warn);
  return pool;
}

function pkcs11Member(config: HsmMemberConfig, others: readonly HsmMemberConfig[], copies: ModuleCopies, keyIds: Map<string, Buffer>, options: OpenHsmOptions): MemberSpec {
  const shared = others.some((o) => o.module === config.module);
  const module = shared ? copies.copy(config.module, config.name) : config.module;
  // The member's connections never cache health: the pool probes them on its own schedule.
  const connection: HsmConfig = { ...config, module, healthCacheSeconds: 0 };
  return {
    name: config.name,
    identity: JSON.stringify(config),
    open: () => withEnv(config.env, () => Pkcs11Hsm.open(connection, { warn: options.warn, withoutCapabilities: options.withoutCapabilities, keyIds })),
    dispose: shared ? () => copies.remove(module) : undefined,
  };
}

/**
 * Runs `open` with the member's environment in process.env and puts the old values back after.
 * Pkcs11Hsm.open calls C_Initialize before its first await, so the module reads this member's
 * values and no other member's open can interleave.
 */
function withEnv<T>(env: Record<string, string> | undefined, open: () => T): T {
  if (!env) return open();
  const saved = new Map<string, string | undefined>();
  for (const [name, value] of Object.entries(env)) {
    saved.set(name, process.env[name]);
    process.env[name] = value;
  }
  try {
    return open();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
