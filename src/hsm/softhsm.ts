import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11 from 'pkcs11js';
import { KeyholdError } from '../errors.js';
import { ckrName, hsmError } from './ckr.js';

/** Where Debian's softhsm2 package puts the module. */
export const SOFTHSM_MODULE_CANDIDATES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];

export function findSoftHsmModule(): string {
  const found = SOFTHSM_MODULE_CANDIDATES.find((path) => existsSync(path));
  if (!found) throw new KeyholdError('ERR_HSM_MODULE', `SoftHSM2 module not found (looked in ${SOFTHSM_MODULE_CANDIDATES.join(', ')}); install the softhsm2 package`);
  return found;
}

export interface SoftHsmToken {
  module: string;
  confPath: string;
  label: string;
  pinFile: string;
  created: boolean;
}

function readOrCreateSecret(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  const value = randomBytes(16).toString('hex');
  writeFileSync(path, value + '\n', { mode: 0o600, flag: 'wx' });
  return value;
}

/**
 * Creates (or reuses) a SoftHSM2 token under `dir`: `dir/softhsm2.conf`, tokens in `dir/tokens`,
 * user PIN in `dir/hsm-pin` and SO PIN in `dir/hsm-so-pin` (both 0600). The token is initialised
 * through PKCS#11 itself so no PIN ever appears on a command line. Sets SOFTHSM2_CONF for this
 * process: call it before anything in the process opens the module.
 */
export function provisionSoftHsmToken(dir: string, label: string): SoftHsmToken {
  const module = findSoftHsmModule();
  mkdirSync(join(dir, 'tokens'), { recursive: true, mode: 0o700 });
  const confPath = join(dir, 'softhsm2.conf');
  if (!existsSync(confPath)) {
    writeFileSync(confPath, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  }
  process.env.SOFTHSM2_CONF = confPath;
  const pinFile = join(dir, 'hsm-pin');
  const userPin = readOrCreateSecret(pinFile);
  const soPin = readOrCreateSecret(join(dir, 'hsm-so-pin'));

  const lib = new pkcs11.PKCS11();
  lib.load(module);
  const init = () => {
    try {
      lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
    }
  };
  const labelOf = (slot: Buffer) => lib.C_GetTokenInfo(slot).label.replace(/[\s\0]+$/, '');
  try {
    init();
    if (lib.C_GetSlotList(true).some((slot) => labelOf(slot) === label)) {
      return { module, confPath, label, pinFile, created: false };
    }
    const free = lib.C_GetSlotList(true).find((slot) => (lib.C_GetTokenInfo(slot).flags & pkcs11.CKF_TOKEN_INITIALIZED) === 0);
    if (!free) throw new KeyholdError('ERR_HSM_TOKEN_NOT_FOUND', 'SoftHSM has no free slot to initialise a token in');
    lib.C_InitToken(free, soPin, label.padEnd(32, ' '));
    // SoftHSM gives the new token a fresh slot id, visible only after re-initialising the library.
    lib.C_Finalize();
    init();
    const slot = lib.C_GetSlotList(true).find((s) => labelOf(s) === label);
    if (!slot) throw new KeyholdError('ERR_HSM_TOKEN_NOT_FOUND', `token "${label}" vanished after initialisation`);
    const session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
    lib.C_Login(session, pkcs11.CKU_SO, soPin);
    lib.C_InitPIN(session, userPin);
    lib.C_Logout(session);
    lib.C_CloseSession(session);
    return { module, confPath, label, pinFile, created: true };
  } catch (err) {
    throw err instanceof KeyholdError ? err : hsmError(err, 'SoftHSM token provisioning');
  } finally {
    try { lib.C_Finalize(); } catch { /* not initialised */ }
    lib.close();
  }
}
