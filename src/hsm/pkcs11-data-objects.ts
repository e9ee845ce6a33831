import pkcs11 from 'pkcs11js';
import { KeyholdError } from '../errors.js';
import { ckrName, hsmError } from './ckr.js';

/**
 * CKO_DATA objects (the seal's data-object mode keeps the wrapped root key in one): kept apart
 * from pkcs11-hsm.ts, which only forwards to these, so the adapter's session handling stays in
 * one place. All run on the logged-in control session: a private object is visible only there.
 */

/** CKA_APPLICATION of every data object keyhold makes, so a token's owner can tell them apart. */
const APPLICATION = 'keyhold';

function find(lib: pkcs11.PKCS11, session: Buffer, label: string): Buffer[] {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_DATA },
    { type: pkcs11.CKA_TOKEN, value: true },
    { type: pkcs11.CKA_LABEL, value: label },
  ]);
  try {
    return lib.C_FindObjects(session, 2);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

function only(found: Buffer[], label: string): Buffer | null {
  if (found.length > 1) throw new KeyholdError('ERR_HSM', `more than one HSM data object is labelled "${label}"`);
  return found[0] ?? null;
}

/** Token, private and not modifiable: readable only after login, and never rewritten in place. */
export function putDataObject(lib: pkcs11.PKCS11, session: Buffer, label: string, value: Buffer): void {
  try {
    if (find(lib, session, label).length > 0) throw new KeyholdError('ERR_CONFLICT', `an HSM data object labelled "${label}" already exists`);
    lib.C_CreateObject(session, [
      { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_DATA },
      { type: pkcs11.CKA_TOKEN, value: true },
      { type: pkcs11.CKA_PRIVATE, value: true },
      { type: pkcs11.CKA_MODIFIABLE, value: false },
      { type: pkcs11.CKA_LABEL, value: label },
      { type: pkcs11.CKA_APPLICATION, value: APPLICATION },
      { type: pkcs11.CKA_VALUE, value },
    ]);
  } catch (err) {
    throw hsmError(err, 'creating a data object');
  }
}

export function getDataObject(lib: pkcs11.PKCS11, session: Buffer, label: string): Buffer | null {
  try {
    const handle = only(find(lib, session, label), label);
    if (!handle) return null;
    const [attr] = lib.C_GetAttributeValue(session, handle, [{ type: pkcs11.CKA_VALUE }]);
    return Buffer.from((attr?.value as Buffer | undefined) ?? Buffer.alloc(0));
  } catch (err) {
    throw hsmError(err, 'reading a data object');
  }
}

export function destroyDataObject(lib: pkcs11.PKCS11, session: Buffer, label: string): void {
  try {
    const handle = only(find(lib, session, label), label);
    if (handle) lib.C_DestroyObject(session, handle);
  } catch (err) {
    if (ckrName(err) !== 'CKR_OBJECT_HANDLE_INVALID') throw hsmError(err, 'destroying a data object');
  }
}
