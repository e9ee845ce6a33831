/**
 * The checkpoint signing key: ECDSA P-256, generated non-extractable in the HSM. Its label and
 * public half (SPKI) are kept in the barrier at `sys/audit/signing-key`, as the seal record keeps
 * the seal key's label. A store initialised before checkpoints existed gets its key at first start.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import { keyFingerprint, type CheckpointSigner } from './checkpoint.js';

/** Key in the audit view (MOUNTS.audit). */
export const SIGNING_KEY_KEY = 'signing-key';

interface SigningKeyRecord {
  label: string;
  /** SPKI DER, base64. */
  spki: string;
  fingerprint: string;
  createdAt: string;
}

export interface AuditSigner extends CheckpointSigner {
  readonly label: string;
  readonly publicKeyPem: string;
}

export interface OpenSignerOptions {
  /** Says that a key was created (or replaced). */
  note: (message: string) => void;
  /**
   * Called instead of creating a key when one must already exist (the barrier names a chain): its
   * record was then removed from storage, and a new key would only overwrite the evidence and leave
   * the old checkpoints "signed by another key".
   */
  missing?: () => Error;
  /** A new chain was asked for (--new-audit-chain): a key gone from the token is replaced, not fatal. */
  replaceLost?: boolean;
}

/** Opens the signing key named in the barrier, or creates it (and says so through `note`) when there is none. */
export async function openAuditSigner(view: BarrierView, hsm: Hsm, options: OpenSignerOptions): Promise<AuditSigner> {
  const { note } = options;
  let record = await view.get<SigningKeyRecord>(SIGNING_KEY_KEY);
  let key = record ? hsm.findKey(record.label, 'ec-p256') : null;
  if (record && !key) {
    const lost = `audit signing key "${record.label}" (fingerprint ${record.fingerprint}) is not in token "${hsm.token.label}"`;
    // Without the key the chain can get no more checkpoints: restore the token, or begin a new chain (and key).
    if (!options.replaceLost) throw new KeyholdError('ERR_HSM_KEY_MISSING', `${lost}; restore the token from its backup, or start with --new-audit-chain to begin a new chain signed by a new key`);
    note(`${lost}: it is no longer in the token; the new chain gets a new key (the old chain can still be verified offline with the old public key)`);
    record = null;
  }
  if (!record && options.missing) throw options.missing();
  if (!record) {
    if (!hsm.capabilities.ecKeyGen || !hsm.capabilities.ecdsa) throw new KeyholdError('ERR_HSM_MECHANISM_UNSUPPORTED', 'the token cannot generate EC keys or sign with ECDSA, which audit checkpoints need');
    const generated = await hsm.generateKey(`keyhold/audit/${randomBytes(4).toString('hex')}`, 'ec-p256');
    if (!generated.publicKeySpki) throw new KeyholdError('ERR_HSM', 'the HSM returned no public key for the audit signing key');
    const publicKey = createPublicKey({ key: generated.publicKeySpki, format: 'der', type: 'spki' });
    record = { label: generated.label, spki: generated.publicKeySpki.toString('base64'), fingerprint: keyFingerprint(publicKey), createdAt: new Date().toISOString() };
    await view.put(SIGNING_KEY_KEY, record);
    key = generated;
    note(`created the audit checkpoint signing key "${record.label}" in the HSM (fingerprint ${record.fingerprint})`);
  }
  const publicKey = createPublicKey({ key: Buffer.from(record.spki, 'base64'), format: 'der', type: 'spki' });
  const fingerprint = keyFingerprint(publicKey);
  if (fingerprint !== record.fingerprint) throw new KeyholdError('ERR_BARRIER_INTEGRITY', 'the audit signing key record does not match its own fingerprint');
  if (!key) throw new KeyholdError('ERR_HSM_KEY_MISSING', `audit signing key "${record.label}" is not in the token`);
  const hsmKey = key;
  return {
    label: record.label,
    fingerprint,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    sign: (statement) => hsm.sign(hsmKey, statement),
  };
}
