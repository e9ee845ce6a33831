import { KeyholdError } from '../errors.js';
import { memberConfigs, type HsmConfig, type HsmMemberConfig, type HsmSettings } from './config.js';
import { endpointMembers, readEndpointFile, watchEndpointFile, type EndpointWatch } from './endpoint-file.js';
import type { HsmEndpointSet } from './endpoint-set.js';
import type { MemberSpec } from './member.js';
import { ModuleCopies } from './module-copies.js';
import { Pkcs11Hsm, type Pkcs11HsmOptions } from './pkcs11-hsm.js';
import { HsmPool } from './pool.js';

export interface OpenHsmOptions extends Pick<Pkcs11HsmOptions, 'warn' | 'withoutCapabilities'> {
  /** Period of the background probe of healthy members (default 1000 ms). */
  probeIntervalMs?: number;
  /** How long to wait for the first valid endpoint set of hsm.endpoints.configMap (default 30 s). */
  firstEndpointsTimeoutMs?: number;
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
  const configMap = settings.endpoints?.configMap;
  if (configMap) return openFromConfigMap(settings, configMap, copies, keyIds, options);
  if (settings.endpoints && !fromFile) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints needs file or configMap');
  const opened = fromFile ? readEndpointFile(fromFile, settings) : undefined;
  const pool = await HsmPool.open<HsmMemberConfig>(opened?.members ?? memberConfigs(settings), {
    log: options.warn,
    probeIntervalMs: options.probeIntervalMs,
    spec: (config, others) => pkcs11Member(config, others, copies, keyIds, options),
    onClose: () => {
      watch?.close();
      copies.close();
    },
  });
  // From the text the pool opened with: the file may have changed while the members connected.
  if (fromFile) watch = watchEndpointFile(fromFile, settings, pool, options.warn, undefined, opened?.text);
  return pool;
}

/**
 * The pool's members follow the operator's ConfigMap through a watch (client-node, loaded only
 * here): the first valid set opens the pool, every later one is applied with setMembers. An
 * invalid document or a missing ConfigMap keeps the current members (logged once per message); a
 * lost watch reconnects with back-off (src/hsm/endpoint-configmap.ts).
 */
async function openFromConfigMap(
  settings: HsmSettings,
  configMap: NonNullable<NonNullable<HsmSettings['endpoints']>['configMap']>,
  copies: ModuleCopies,
  keyIds: Map<string, Buffer>,
  options: OpenHsmOptions,
): Promise<Pkcs11Pool> {
  const template = settings.memberTemplate;
  if (!template) throw new KeyholdError('ERR_CONFIG', 'hsm.endpoints.configMap needs hsm.memberTemplate');
  const toMembers = (set: HsmEndpointSet) => endpointMembers(set, template, settings.sessions);
  const where = `ConfigMap ${configMap.namespace}/${configMap.name}`;
  let lastError: string | undefined;
  const report = (err: Error): void => {
    if (err.message !== lastError) options.warn?.(`HSM endpoints: ${err.message}; keeping the current members`);
    lastError = err.message;
  };
  let pool: Pkcs11Pool | undefined;
  let latest: HsmEndpointSet | undefined;
  let first: (() => void) | undefined;
  /** setMembers one at a time, always to the latest set. */
  let applying = Promise.resolve();
  const apply = (set: HsmEndpointSet): void => {
    latest = set;
    lastError = undefined;
    first?.();
    if (!pool) return;
    const target = pool;
    applying = applying.then(async () => {
      if (latest !== set) return; // a newer set follows
      options.warn?.(`HSM endpoints changed (${where}): members ${set.endpoints.map((e) => e.name).join(', ') || '(none)'}`);
      await target.setMembers(toMembers(set)).catch((err: unknown) => report(new Error(`applying the HSM endpoint set failed: ${(err as Error).message}`)));
    });
  };
  const { watchEndpointConfigMap } = await import('./endpoint-configmap.js');
  const watch = await watchEndpointConfigMap(configMap, apply, report);
  try {
    if (!latest) {
      const timeoutMs = options.firstEndpointsTimeoutMs ?? 30_000;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new KeyholdError('ERR_HSM_UNAVAILABLE', `no valid HSM endpoint set in ${where} within ${timeoutMs / 1000} s${lastError ? `: ${lastError}` : ''}`)), timeoutMs);
        first = () => { clearTimeout(timer); resolve(); };
      });
      first = undefined;
    }
    const initial = latest as unknown as HsmEndpointSet;
    pool = await HsmPool.open<HsmMemberConfig>(toMembers(initial), {
      log: options.warn,
      probeIntervalMs: options.probeIntervalMs,
      spec: (config, others) => pkcs11Member(config, others, copies, keyIds, options),
      onClose: () => {
        watch.stop();
        copies.close();
      },
    });
    // A set that arrived while the pool was opening.
    if (latest !== initial) apply(latest as unknown as HsmEndpointSet);
    return pool;
  } catch (err) {
    watch.stop();
    copies.close();
    throw err;
  }
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
