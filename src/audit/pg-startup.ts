/**
 * Opening the audit log in PostgreSQL at server start: every process begins its own chain (chains
 * are per writer; replicas share the table, each appending to its own chain), names it in its
 * chain-start entry with the host and process, and checkpoints it at once, so that every chain in
 * the table, even one of a process killed a second later, carries an HSM signature.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import type { PostgresStorage } from '../storage/postgres.js';
import { PostgresAuditLog } from './pg-log.js';
import { AuditFileMirror } from './pg-mirror.js';
import { openAuditSigner, type AuditSigner } from './signer.js';
import { DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_INTERVAL_SECONDS, type OpenChainOptions } from './startup.js';

export interface PostgresAuditSettings {
  /** The second sink: a directory for a file copy of this process's chain (pg-mirror.ts). */
  mirrorDir?: string;
  checkpointEvery?: number;
  checkpointIntervalSeconds?: number;
}

export async function openPostgresAuditChain(storage: PostgresStorage, settings: PostgresAuditSettings, view: BarrierView, hsm: Hsm, options: OpenChainOptions): Promise<{ log: PostgresAuditLog; signer: AuditSigner }> {
  const signer = await openAuditSigner(view, hsm, {
    note: options.warn,
    // Made at init; gone later means removed from storage, and a new key would bury the old checkpoints.
    ...(options.initializing || options.newChain ? {} : { missing: () => new KeyholdError('ERR_AUDIT_CHAIN_BROKEN', 'the barrier has no audit signing key record (removed from storage?); after investigating, start with --new-audit-chain') }),
    replaceLost: options.newChain === true,
  });
  const chain = randomBytes(16).toString('hex');
  // Opened before the chain starts, so the copy holds it from its chain-start entry.
  const mirror = settings.mirrorDir !== undefined ? AuditFileMirror.open(settings.mirrorDir, chain, options.error ?? options.warn) : undefined;
  const log = await PostgresAuditLog.open(storage, {
    ...(mirror ? { mirror } : {}),
    chain,
    start: { chain, reason: options.initializing ? 'init' : options.newChain ? options.newChainReason ?? 'new-audit-chain' : 'start', host: hostname().slice(0, 255), pid: process.pid, ...(options.newChain ? options.startDetails : {}) },
    checkpoints: {
      signer,
      everyEntries: settings.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY,
      intervalMs: (settings.checkpointIntervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS) * 1000,
    },
    warn: options.warn,
    ...(options.error ? { error: options.error } : {}),
  });
  try {
    if (!(await log.checkpoint())) throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', 'the new audit chain could not be checkpointed');
  } catch (err) {
    await log.close().catch(() => undefined);
    throw err;
  }
  return { log, signer };
}
