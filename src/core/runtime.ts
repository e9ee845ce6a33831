import { hkdfSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { AuditHmac } from '../audit/hmac.js';
import type { AuditLog } from '../audit/log.js';
import type { AuditSigner } from '../audit/signer.js';
import { openAuditChain } from '../audit/startup.js';
import { Barrier } from '../barrier/barrier.js';
import { MOUNTS } from '../barrier/mounts.js';
import { initializeSeal, isInitialized, unseal, type Unsealed } from '../barrier/seal.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import { openHsm } from '../hsm/open.js';
import { registerCoreJobs } from '../ha/core-jobs.js';
import type { BackgroundJobs } from '../ha/jobs.js';
import type { Leadership } from '../ha/leader.js';
import { startReplication, type Replication } from '../ha/replication.js';
import type { SharedStorage } from '../ha/shared-storage.js';
import type { Hsm } from '../hsm/types.js';
import { KubernetesAuth } from '../identity/kubernetes/auth.js';
import { TokenStore } from '../identity/tokens.js';
import { tokenViews } from '../identity/token-paths.js';
import type { KeysContext } from '../keys/context.js';
import { MaterialCache } from '../keys/material.js';
import { KeyRecordStore } from '../keys/record-store.js';
import { ROOT_POLICY_NAME } from '../policy/evaluate.js';
import { PolicyStore } from '../policy/store.js';
import { SecretStore } from '../secrets/store.js';
import type { PostgresStorage } from '../storage/postgres.js';
import type { Storage } from '../storage/types.js';
import type { ServerConfig } from './config.js';
import { openStorage, requireExistingStore, storageName } from './storage.js';

/** Everything a running server holds; the API layer receives this and nothing else. */
export interface Runtime {
  config: ServerConfig;
  hsm: Hsm;
  storage: Storage;
  barrier: Barrier;
  keys: KeysContext;
  secrets: SecretStore;
  tokens: TokenStore;
  kubernetesAuth: KubernetesAuth;
  policies: PolicyStore;
  audit: AuditLog;
  /** The checkpoint signing key (public half only in this process). */
  auditSigner: Pick<AuditSigner, 'fingerprint' | 'publicKeyPem'>;
  auditHmac: AuditHmac;
  /** Whether this replica leads (runs the background jobs); on SQLite always. */
  leadership: Leadership;
  jobs: BackgroundJobs;
  startedAt: number;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Initialise an empty store and write the root token here (0600). Without it, an uninitialised store is refused. */
  initRootTokenFile?: string;
  /** Start a new audit chain even though the barrier remembers one (--new-audit-chain). */
  newAuditChain?: boolean;
  warn?: (message: string) => void;
}

/** A key derived from the root key for one purpose; nothing derived is ever stored. */
function deriveKey(rootKey: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', rootKey, Buffer.alloc(0), Buffer.from(purpose, 'utf8'), 32));
}

/**
 * Start-up order matters for "no data touched": the HSM is opened (PIN checked) before storage,
 * and unsealing only reads. A wrong PIN, a missing module or a missing HSM key stops start-up
 * before anything is written.
 */
export async function startRuntime(config: ServerConfig, options: StartOptions = {}): Promise<Runtime> {
  if (!options.initRootTokenFile) requireExistingStore(config.storage);
  const hsm = await openHsm(config.hsm, { warn: options.warn });
  let storage: Storage | undefined;
  let unsealed: Unsealed | undefined;
  let auditLog: AuditLog | undefined;
  let replication: Replication | undefined;
  let shared: SharedStorage | undefined;
  const warn = options.warn ?? ((x: string) => process.stderr.write(`keyhold: warning: ${x}\n`));
  try {
    storage = await openStorage(config.storage, { warn: options.warn });
    // Shared between replicas (PostgreSQL): the change feed, before anything caches a read.
    // (Loaded only for PostgreSQL, like the store itself: a SQLite server never loads `pg`.)
    shared = config.storage.postgres ? await (await import('../ha/shared-storage.js')).shareStorage(storage, warn) : undefined;
    let rootToken: string | undefined;
    if (await isInitialized(storage)) {
      unsealed = await unseal(storage, hsm);
    } else if (options.initRootTokenFile) {
      unsealed = await initializeSeal(storage, hsm);
    } else {
      throw new KeyholdError('ERR_NOT_INITIALIZED', `${storageName(config.storage)} is not initialised; run "keyhold init --config FILE --root-token-file FILE" first`);
    }
    const barrier = new Barrier(storage, unsealed.rootKey, { generation: unsealed.generation });
    const auditKey = deriveKey(unsealed.rootKey, 'keyhold/audit-hmac/v1');
    const auditHmac = new AuditHmac(auditKey);
    zeroize(auditKey, unsealed.rootKey);
    // Each domain gets a view over its own prefix, never the barrier itself.
    const podTokens = barrier.view(MOUNTS.podTokens);
    const tokens = new TokenStore(tokenViews(barrier), { maxTtlSeconds: config.tokens?.maxTtlSeconds });
    let initializing = false;
    if (options.initRootTokenFile && !(await barrier.getJson('sys/initialized'))) {
      initializing = true;
      // The only token exempt from the maximum TTL (issue 9): the one made at initialisation.
      rootToken = (await tokens.create({ policies: [ROOT_POLICY_NAME], displayName: 'root', neverExpires: true })).token;
      writeFileSync(options.initRootTokenFile, rootToken + '\n', { mode: 0o600 });
      await barrier.putJson('sys/initialized', { at: new Date().toISOString() });
    }
    const error = (x: string) => process.stderr.write(`keyhold: error: ${x}\n`);
    const chainOptions = { newChain: options.newAuditChain, initializing, warn, error };
    // On PostgreSQL the log is the database's audit table, written in the writes' transactions.
    const { log: audit, signer: auditSigner } = config.storage.postgres
      ? await (await import('../audit/pg-startup.js')).openPostgresAuditChain(storage as PostgresStorage, config.audit, barrier.view(MOUNTS.audit), hsm, chainOptions)
      : await openAuditChain({ ...config.audit, path: config.audit.path as string }, barrier.view(MOUNTS.audit), hsm, chainOptions);
    auditLog = audit;
    const records = new KeyRecordStore(barrier.view(MOUNTS.keys));
    const material = new MaterialCache(hsm, unsealed.wrapKey);
    const kubernetesAuth = new KubernetesAuth(barrier.view(MOUNTS.kubernetes), podTokens, tokens, { warn });
    await kubernetesAuth.start();
    // Background work (the token sweep, the revocation of deleted pods' tokens) runs while this
    // replica leads: always on SQLite, on the elected replica on PostgreSQL.
    replication = await startReplication(shared?.newSessionClient, warn);
    registerCoreJobs(replication.jobs, { tokens, kubernetesAuth }, warn);
    replication.jobs.follow();
    const { leadership } = replication;
    const runtime: Runtime = {
      config,
      hsm,
      storage,
      barrier,
      keys: { hsm, wrapKey: unsealed.wrapKey, records, material },
      secrets: new SecretStore(barrier.view(MOUNTS.secrets)),
      tokens,
      kubernetesAuth,
      policies: new PolicyStore(barrier.view(MOUNTS.policies)),
      audit,
      auditSigner,
      auditHmac,
      leadership,
      jobs: replication.jobs,
      startedAt: Date.now(),
      async close() {
        await replication?.close();
        kubernetesAuth.close();
        await shared?.close();
        material.clear();
        // Before sealing: closing writes the final checkpoint, and puts it in the barrier.
        await audit.close().catch((err: unknown) => warn(`closing the audit log failed: ${(err as Error).message}`));
        barrier.seal();
        await storage?.close().catch(() => undefined);
        await hsm.close();
      },
    };
    return runtime;
  } catch (err) {
    if (unsealed) zeroize(unsealed.rootKey);
    await replication?.close();
    await shared?.close();
    await auditLog?.close().catch(() => undefined);
    await storage?.close().catch(() => undefined);
    await hsm.close();
    throw err;
  }
}
