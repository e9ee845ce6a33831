import fs from 'node:fs';
import type { HsmConfig } from '../../src/hsm/config.js';
import { provisionSoftHsmToken } from '../../src/hsm/softhsm.js';
import { tempDir } from './temp.js';

export interface SoftHsmTestToken {
  /** Temp dir holding softhsm2.conf, the token store and the PIN files. */
  dir: string;
  /** Path of the SoftHSM2 PKCS#11 module. */
  module: string;
  confPath: string;
  pinFile: string;
  label: string;
  /** Ready for Pkcs11Hsm.open: selects the token by label, PIN from pinFile. */
  config: HsmConfig;
}

/**
 * A fresh SoftHSM2 token in a new temp dir. Sets SOFTHSM2_CONF for the whole process, so call it
 * once per test file, before anything opens the module (node --test runs each file in its own process).
 */
export function makeSoftHsmToken(label = 'keyhold-test'): SoftHsmTestToken {
  const dir = tempDir('keyhold-softhsm-');
  const token = provisionSoftHsmToken(dir, label);
  return {
    dir,
    module: token.module,
    confPath: token.confPath,
    pinFile: token.pinFile,
    label: token.label,
    config: { module: token.module, tokenLabel: token.label, pinFile: token.pinFile },
  };
}

/** The user PIN, for tests that must hand it to pkcs11-tool. Never log it outside tests. */
export function readPin(token: Pick<SoftHsmTestToken, 'pinFile'>): string {
  return fs.readFileSync(token.pinFile, 'utf8').replace(/\r?\n$/, '');
}
