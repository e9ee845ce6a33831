/** Shared set-up of the audit unit tests that sign checkpoints (not a test file itself). */
import fs from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { keyFingerprint, type CheckpointSigner } from '../../../src/audit/checkpoint.js';
import type { AuditRecord, SealedAnyAuditEntry } from '../../../src/audit/entry.js';
import { MemoryHsm } from '../../../src/hsm/memory.js';
import type { Hsm } from '../../../src/hsm/types.js';

/**
 * EC P-256 keys in an in-memory HSM (same contract as SoftHSM: the checkpoint logic sees only the
 * Hsm interface), as checkpoint signers. The SoftHSM-signed path runs end to end in test/integration/server/.
 */
export async function hsmSigners(labels: string[]): Promise<{ hsm: Hsm; signers: CheckpointSigner[] }> {
  const hsm = await MemoryHsm.open();
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

