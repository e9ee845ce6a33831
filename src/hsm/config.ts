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
