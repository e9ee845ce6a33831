/** Shared set-up of the audit unit tests that sign checkpoints (not a test file itself). */
import fs from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { keyFingerprint, type CheckpointSigner } from '../../../src/audit/checkpoint.js';
import type { AuditRecord, SealedAnyAuditEntry } from '../../../src/audit/entry.js';
import { Pkcs11Hsm } from '../../../src/hsm/pkcs11-hsm.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';

/** A real SoftHSM token with EC P-256 keys generated in it (non-extractable), as checkpoint signers. */
export async function hsmSigners(labels: string[]): Promise<{ hsm: Pkcs11Hsm; signers: CheckpointSigner[] }> {
  const token = makeSoftHsmToken();
  const hsm = await Pkcs11Hsm.open(token.config);
  const signers: CheckpointSigner[] = [];
  for (const label of labels) {
    const key = await hsm.generateKey(label, 'ec-p256');
    const publicKey = createPublicKey({ key: key.publicKeySpki as Buffer, format: 'der', type: 'spki' });
    signers.push({ fingerprint: keyFingerprint(publicKey), publicKey, sign: (d) => hsm.sign(key, d) });
  }
  return { hsm, signers };
}

export const rec = (i: number): AuditRecord => ({
  type: 'request', requestId: `req-${i}`, operation: 'secrets.read', path: `secrets/app/${i}`, outcome: { status: 200 },
});

export const CHAIN = 'c'.repeat(32);
export const OTHER_CHAIN = 'd'.repeat(32);

export type Line = SealedAnyAuditEntry & { data?: Record<string, string | number> };

export function readLines(file: string): Line[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

