/**
 * Checkpoints: an HSM-held ECDSA P-256 key signs (chain id, head seq, head hash, time). Anyone with
 * the public key can check them; rewriting the chain before a checkpoint would need the HSM.
 * The signed statement is domain-separated, so no other keyhold signature can pass for one.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import { HEX64, ISO_TIME, type AuditHead } from './entry.js';

const DOMAIN = 'keyhold-audit-checkpoint-v1\n';

/** What a checkpoint entry's `data` holds. */
export interface CheckpointData {
  /** The chain's random id (from its chain-start entry). */
  chain: string;
  /** The head this checkpoint signs: an earlier entry of the same chain. */
  headSeq: number;
  headHash: string;
  /** When the signature was made (part of the signed statement). */
  signedAt: string;
  /** sha256 hex of the signing key's SPKI DER. */
  key: string;
  /** ECDSA P-256 / SHA-256 signature, raw r‖s, base64. */
  sig: string;
}

/** The latest checkpoint as kept in the barrier (`sys/audit/checkpoint`) and exported: also where its entry sits. */
export interface StoredCheckpoint extends CheckpointData {
  entrySeq: number;
  entryHash: string;
}

/** Signs with a key the process cannot read (the HSM's); see signer.ts. */
export interface CheckpointSigner {
  readonly fingerprint: string;
  readonly publicKey: KeyObject;
  sign(statement: Buffer): Promise<Buffer>;
}

export function checkpointStatement(chain: string, head: AuditHead, signedAt: string): Buffer {
  return Buffer.from(DOMAIN + canonicalJson({ chain, hash: head.hash, seq: head.seq, time: signedAt }), 'utf8');
}

export function keyFingerprint(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

export function publicKeyFromPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the audit public key must be an EC P-256 key');
  return key;
}

export async function makeCheckpoint(signer: CheckpointSigner, chain: string, head: AuditHead, signedAt: string): Promise<CheckpointData> {
  const sig = await signer.sign(checkpointStatement(chain, head, signedAt));
  return { chain, headSeq: head.seq, headHash: head.hash, signedAt, key: signer.fingerprint, sig: sig.toString('base64') };
}

/** Why `data` is not a well-formed checkpoint, or undefined. */
export function checkpointShapeProblem(data: Record<string, unknown>): string | undefined {
  const { chain, headSeq, headHash, signedAt, key, sig } = data;
  const keys = Object.keys(data).sort().join(',');
  if (keys !== 'chain,headHash,headSeq,key,sig,signedAt') return `checkpoint fields are ${keys}`;
  if (typeof chain !== 'string' || !/^[0-9a-f]{32}$/.test(chain)) return 'checkpoint chain id is malformed';
  if (typeof headSeq !== 'number' || !Number.isSafeInteger(headSeq) || headSeq < 1) return 'checkpoint headSeq is not a positive integer';
  if (typeof headHash !== 'string' || !HEX64.test(headHash)) return 'checkpoint headHash is not a sha256 hex digest';
  if (typeof signedAt !== 'string' || !ISO_TIME.test(signedAt)) return 'checkpoint signedAt is not an ISO timestamp';
  if (typeof key !== 'string' || !HEX64.test(key)) return 'checkpoint key is not a sha256 fingerprint';
  if (typeof sig !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(sig)) return 'checkpoint sig is not a base64 P-256 signature';
  return undefined;
}

/** True when `sig` is the key's signature over the checkpoint's statement. */
export function checkpointSignatureValid(data: CheckpointData, publicKey: KeyObject): boolean {
  const statement = checkpointStatement(data.chain, { seq: data.headSeq, hash: data.headHash }, data.signedAt);
  return verify('sha256', statement, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(data.sig, 'base64'));
}

/** The exported (API / `--checkpoint` file) spelling of a stored checkpoint. */
export interface ExportedCheckpoint {
  chain: string;
  head_seq: number;
  head_hash: string;
  signed_at: string;
  key: string;
  signature: string;
  entry_seq: number;
  entry_hash: string;
}

export function exportCheckpoint(c: StoredCheckpoint): ExportedCheckpoint {
  return { chain: c.chain, head_seq: c.headSeq, head_hash: c.headHash, signed_at: c.signedAt, key: c.key, signature: c.sig, entry_seq: c.entrySeq, entry_hash: c.entryHash };
}

/** Parses an exported checkpoint; throws with a reason when it is malformed. */
export function importCheckpoint(value: unknown): StoredCheckpoint {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const data = { chain: v['chain'], headSeq: v['head_seq'], headHash: v['head_hash'], signedAt: v['signed_at'], key: v['key'], sig: v['signature'] };
  const problem = checkpointShapeProblem(data);
  if (problem !== undefined) throw new Error(problem);
  const entrySeq = v['entry_seq'];
  const entryHash = v['entry_hash'];
  if (typeof entrySeq !== 'number' || !Number.isSafeInteger(entrySeq) || entrySeq <= (data.headSeq as number)) throw new Error('entry_seq is not an integer after head_seq');
  if (typeof entryHash !== 'string' || !HEX64.test(entryHash)) throw new Error('entry_hash is not a sha256 hex digest');
  return { ...(data as unknown as CheckpointData), entrySeq, entryHash };
}
