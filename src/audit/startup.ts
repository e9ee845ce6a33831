/**
 * Opening the audit chain at server start, against what the barrier remembers of it: the chain id
 * (`sys/audit/chain`) and the latest checkpoint (`sys/audit/checkpoint`). A missing, shorter,
 * rewritten or foreign log refuses the start (ERR_AUDIT_CHAIN_BROKEN); only `newChain` (the
 * operator's --new-audit-chain) starts over, and that choice is the new chain's first entry.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { rename } from 'node:fs/promises';
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import type { StoredCheckpoint } from './checkpoint.js';
import { FileAuditLog } from './file-log.js';
import { openAuditSigner, SIGNING_KEY_KEY, type AuditSigner } from './signer.js';
import { auditFileSet, scanAuditFiles, type AuditVerifyResult } from './verify.js';

/** Keys in the audit view (MOUNTS.audit). */
export const CHAIN_KEY = 'chain';
export const CHECKPOINT_KEY = 'checkpoint';

interface ChainRecord {
  id: string;
  startedAt: string;
  reason: string;
  previous?: { chain?: string; headSeq: number; headHash: string };
}

export interface AuditSettings {
  path: string;
  maxFileBytes?: number;
  checkpointEvery?: number;
  checkpointIntervalSeconds?: number;
}

export const DEFAULT_CHECKPOINT_EVERY = 1000;
export const DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 10;

const NEW_CHAIN_HINT = 'after investigating, start with --new-audit-chain to begin a new chain (the old files are kept, renamed *.abandoned-<time>)';

function broken(message: string): KeyholdError {
  return new KeyholdError('ERR_AUDIT_CHAIN_BROKEN', `${message}; ${NEW_CHAIN_HINT}`);
}

/** Renames the files of an abandoned set out of the way of the new chain's names. */
async function moveAside(paths: string[]): Promise<string[]> {
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const moved: string[] = [];
  for (const p of paths) {
    const target = `${p}.abandoned-${stamp}`;
    await rename(p, target);
    moved.push(target);
  }
  return moved;
}

export interface OpenChainOptions {
  /** --new-audit-chain: begin a new chain whatever the barrier and the files say. */
  newChain?: boolean;
  /** With newChain: why, when not the operator's --new-audit-chain ('seal-migrate'); and what to record of it. */
  newChainReason?: string;
  startDetails?: Record<string, string | number>;
  /** This start initialised the store, so no chain can exist yet. */
  initializing?: boolean;
  warn: (message: string) => void;
  error?: (message: string) => void;
}

export async function openAuditChain(settings: AuditSettings, view: BarrierView, hsm: Hsm, options: OpenChainOptions): Promise<{ log: FileAuditLog; signer: AuditSigner }> {
  const { warn } = options;
  let signerCreated = false;
  const chain = await view.get<ChainRecord>(CHAIN_KEY);
  const anchor = await view.get<StoredCheckpoint>(CHECKPOINT_KEY);
  // No chain in the barrier after initialisation: only a store from before checkpoints, whose log is
  // an intact plain hash chain, may begin one without the flag. Otherwise the audit records were
  // removed from storage, and beginning a chain would bury the old log without anyone asking.
  // Decided before anything is written (the signing key included).
  let legacy: AuditVerifyResult | undefined;
  if (!chain && !options.newChain && !options.initializing) {
    const files = auditFileSet(settings.path);
    if (files.length === 0) throw broken('the barrier has no audit chain record and there is no audit log, but the store was initialised before (removed from storage?)');
    const scan = await scanAuditFiles(files, {}, settings.path);
    if (scan.verifier.chainId !== undefined) throw broken(`the audit log is chain ${scan.verifier.chainId}, but the barrier has no audit chain record (removed from storage?)`);
    if (!scan.result.ok || scan.result.entries === 0) {
      throw broken(`the barrier has no audit chain record, and the audit log is not an intact log from before checkpoints (${scan.result.ok ? 'empty' : `bad at seq ${scan.result.badSeq}: ${scan.result.reason}`})`);
    }
    legacy = scan.result;
  }
  // A recorded chain was signed by a key the barrier names; only a new chain may come with a new key.
  // The key that signed the old chain, for judging its files when a new chain (and key) begins.
  const oldSpki = options.newChain ? (await view.get<{ spki: string }>(SIGNING_KEY_KEY))?.spki : undefined;
  const keyRecordRemoved = chain && !options.newChain ? () => broken(`the barrier records audit chain ${chain.id} but not its checkpoint signing key record (removed from storage?)`) : undefined;
  const signer = await openAuditSigner(view, hsm, {
    note: (m) => { signerCreated = true; warn(m); },
    ...(keyRecordRemoved ? { missing: keyRecordRemoved } : {}),
    replaceLost: options.newChain === true,
  });
  let recorded = true;
  const pending: { record?: ChainRecord } = {};
  const checkpoints = {
    signer,
    everyEntries: settings.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY,
    intervalMs: (settings.checkpointIntervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS) * 1000,
    onCheckpoint: async (c: StoredCheckpoint) => {
      if (recorded) return view.put(CHECKPOINT_KEY, c);
      // A new chain and its first checkpoint enter the barrier together.
      await view.commit([], [view.write(CHAIN_KEY, pending.record), view.write(CHECKPOINT_KEY, c)]);
      recorded = true;
    },
  };
  const common = { checkpoints, warn, ...(options.error ? { error: options.error } : {}), ...(settings.maxFileBytes !== undefined ? { maxFileBytes: settings.maxFileBytes } : {}) };

  if (chain && !options.newChain) {
    if (!anchor) throw broken(`the barrier records audit chain ${chain.id} but not its latest checkpoint`);
    try {
      const log = await FileAuditLog.open(settings.path, { ...common, check: { publicKey: signer.publicKey, chain: chain.id, anchor } });
      return { log, signer };
    } catch (err) {
      if (!isKeyholdError(err, 'ERR_AUDIT_CHAIN_BROKEN')) throw err;
      throw new KeyholdError('ERR_AUDIT_CHAIN_BROKEN', `${err.message}; the barrier's latest checkpoint is seq ${anchor.entrySeq} of chain ${anchor.chain}; ${NEW_CHAIN_HINT}`, { details: err.details ? { ...err.details } : undefined });
    }
  }

  // A new chain: this store's first, one for a store initialised before checkpoints existed, or the operator's choice.
  const existing = auditFileSet(settings.path).map((f) => f.path);
  let reason = 'init';
  let previous: ChainRecord['previous'];
  let previousState: string | undefined;
  if (options.newChain) {
    reason = options.newChainReason ?? 'new-audit-chain';
    if (existing.length > 0) {
      const publicKey = oldSpki ? createPublicKey({ key: Buffer.from(oldSpki, 'base64'), format: 'der', type: 'spki' }) : signer.publicKey;
      const check = (await scanAuditFiles(existing.map((p) => ({ path: p })), { publicKey, ...(chain ? { chain: chain.id } : {}), ...(anchor ? { anchor } : {}) })).result;
      previousState = check.ok ? 'intact' : `bad at seq ${check.badSeq}: ${check.reason}`;
    } else {
      previousState = 'missing';
    }
    if (anchor) previous = { chain: anchor.chain, headSeq: anchor.entrySeq, headHash: anchor.entryHash };
  } else if (existing.length > 0 || !signerCreated) {
    // No chain in the barrier. Only a store from before checkpoints (whose signing key was made just
    // now) may start one over existing files; otherwise the chain record was removed from storage.
    if (!signerCreated) throw broken('the barrier has an audit signing key but no audit chain record (removed from storage?)');
    reason = 'upgrade';
    const old = legacy ?? (await scanAuditFiles(existing.map((p) => ({ path: p })))).result;
    previousState = old.ok ? 'intact (hash chain only, no checkpoints)' : `bad at seq ${old.badSeq}: ${old.reason}`;
    previous = { headSeq: old.entries, headHash: old.ok ? old.lastHash : '' };
  }
  const moved = await moveAside(existing);
  if (moved.length > 0) warn(`audit: starting a new chain (${reason}); the previous files were kept as ${moved.join(', ')}`);
  const id = randomBytes(16).toString('hex');
  pending.record = { id, startedAt: new Date().toISOString(), reason, ...(previous ? { previous } : {}) };
  const start: Record<string, string | number> = {
    chain: id,
    reason,
    ...(previous?.chain ? { previousChain: previous.chain } : {}),
    ...(previous ? { previousHeadSeq: previous.headSeq, previousHeadHash: previous.headHash } : {}),
    ...(previousState ? { previousState: previousState.slice(0, 512) } : {}),
    ...(moved.length > 0 ? { previousFiles: moved.length } : {}),
    ...(options.newChain ? options.startDetails : {}),
  };
  recorded = false;
  const log = await FileAuditLog.open(settings.path, { ...common, start });
  try {
    // The chain exists for the barrier only once its first checkpoint is durable.
    await log.checkpoint();
    if (!recorded) throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'the new audit chain could not be checkpointed');
  } catch (err) {
    await log.close().catch(() => undefined);
    throw err;
  }
  return { log, signer };
}
