import { readFileSync } from 'node:fs';
import { KeyholdError } from '../errors.js';

export interface HsmConfig {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** Token label; used when `slot` is absent. */
  tokenLabel?: string;
  /** Slot id (decimal string: ids can exceed 2^53). */
  slot?: string;
  /** Name of an environment variable that holds the user PIN. */
  pinEnv?: string;
  /** Path of a file that holds the user PIN (trailing newline ignored). */
  pinFile?: string;
  /** Number of PKCS#11 sessions kept open for concurrent operations. */
  sessions?: number;
  /** Seconds a health probe result is reused. */
  healthCacheSeconds?: number;
  /**
   * Environment the module reads at C_Initialize (e.g. P11_KIT_SERVER_ADDRESS, a vendor's config
   * path): set in process.env around this connection's C_Initialize only, on every re-initialise.
   */
  env?: Record<string, string>;
}

/**
 * The PIN comes from an environment variable or a file — never argv, never a config value, never
 * logged. The returned string is the only copy keyhold keeps (PKCS#11 login needs it once).
 */
export function resolvePin(config: HsmConfig): string {
  if (config.pinEnv) {
    const value = process.env[config.pinEnv];
    if (value === undefined || value === '') {
      throw new KeyholdError('ERR_CONFIG', `HSM PIN environment variable ${config.pinEnv} is not set`);
    }
    return value;
  }
  if (config.pinFile) {
    let raw: string;
    try {
      raw = readFileSync(config.pinFile, 'utf8');
    } catch (cause) {
      throw new KeyholdError('ERR_CONFIG', `cannot read HSM PIN file ${config.pinFile}`, { cause });
    }
    const pin = raw.replace(/\r?\n$/, '');
    if (pin === '') throw new KeyholdError('ERR_CONFIG', `HSM PIN file ${config.pinFile} is empty`);
    return pin;
  }
  throw new KeyholdError('ERR_CONFIG', 'no HSM PIN source: set hsm.pinEnv or hsm.pinFile');
}

/** One member of an HSM cluster: a connection of its own (module, environment, token, PIN source). */
export interface HsmMemberConfig extends HsmConfig {
  /** Shown in health and metrics; unique within the cluster. */
  name: string;
}

/** What `${address}` and `${name}` are filled into, per endpoint of an endpoint list. */
export type HsmMemberTemplate = Pick<HsmConfig, 'module' | 'env' | 'tokenLabel' | 'slot' | 'pinEnv' | 'pinFile'>;

/**
 * The `hsm` section: one endpoint (module, tokenLabel|slot, pinEnv|pinFile, as before), a cluster
 * (`members`), or a cluster whose endpoints are read from a file the operator maintains
 * (`endpoints.file` or `endpoints.configMap`, + `memberTemplate`). Every form opens an HsmPool (src/hsm/open.ts).
 */
export interface HsmSettings extends Partial<HsmConfig> {
  members?: HsmMemberConfig[];
  /** The operator's endpoint list: a mounted file, or the ConfigMap watched (in-cluster, or through `kubeconfig`). */
  endpoints?: { file?: string; configMap?: { namespace: string; name: string; kubeconfig?: string } };
  memberTemplate?: HsmMemberTemplate;
  /** Where per-member copies of a shared module file go (default: a fresh 0700 dir under the OS temp dir). */
  moduleCopyDir?: string;
}

/** The members named by the `hsm` section (without an endpoint file): one member named "hsm" for the single-endpoint form. */
export function memberConfigs(settings: HsmSettings): HsmMemberConfig[] {
  if (settings.members && settings.members.length > 0) {
    return settings.members.map((m) => ({ sessions: settings.sessions, ...m }));
  }
  if (!settings.module) throw new KeyholdError('ERR_CONFIG', 'set hsm.module, hsm.members or hsm.endpoints.file');
  const { members: _m, endpoints: _e, memberTemplate: _t, moduleCopyDir: _d, ...single } = settings;
  return [{ ...(single as HsmConfig), name: 'hsm' }];
}
