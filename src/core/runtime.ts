import { writeFileSync } from 'node:fs';
import { ApprovalPolicyStore } from '../approvals/policy-store.js';
import { ApprovalRequestStore } from '../approvals/request-store.js';
import { Approvals } from '../approvals/service.js';
import { DEFAULT_APPROVAL_LIMITS, type ApprovalLimits } from '../approvals/open-index.js';
import { ApprovalSweep, DEFAULT_RETENTION_SECONDS, DEFAULT_SWEEP_INTERVAL_SECONDS } from '../approvals/sweep.js';
import { AuditHmac } from '../audit/hmac.js';
import type { AuditLog } from '../audit/log.js';
import type { AuditSigner } from '../audit/signer.js';
import { openAuditChain } from '../audit/startup.js';
import type { Barrier } from '../barrier/barrier.js';
import { deriveRootKey, openBarrier } from '../barrier/keyring.js';
import { MOUNTS } from '../barrier/mounts.js';
import { RootRotation } from '../barrier/rotation.js';
import { checkRecoveryParameters } from '../barrier/recovery.js';
import { initializeSeal, readSealRecord, unsealRecord, type Unsealed } from '../barrier/seal.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import { openHsm } from '../hsm/open.js';
import { registerCoreJobs } from '../ha/core-jobs.js';
import type { BackgroundJobs } from '../ha/jobs.js';
import type { Leadership } from '../ha/leader.js';
import { startReplication, type Replication } from '../ha/replication.js';
import type { SharedStorage } from '../ha/shared-storage.js';
import type { Hsm } from '../hsm/types.js';
import { GroupStore } from '../groups/store.js';
import { KubernetesAuth } from '../identity/kubernetes/auth.js';
import { OidcAuth } from '../identity/oidc/oidc-auth.js';
import { TokenStore } from '../identity/tokens.js';
import { tokenViews } from '../identity/token-paths.js';
import type { KeysContext } from '../keys/context.js';
import { MaterialCache } from '../keys/material.js';
import { openMaterialWrapper, type MaterialWrapper } from '../keys/protection/wrapper.js';
import { KeyRecordStore } from '../keys/record-store.js';
import { OperatorStore, type OperatorStoreOptions } from '../operators/store.js';
import { DEFAULT_OPERATOR_TOKEN_TTL_SECONDS } from '../operators/login.js';
import { ROOT_POLICY_NAME } from '../policy/evaluate.js';
import { PolicyStore } from '../policy/store.js';
import { SecretStore } from '../secrets/store.js';
import type { PostgresStorage } from '../storage/postgres.js';
import type { NewPgClient } from '../storage/pg-session.js';
import type { Storage } from '../storage/types.js';
import type { ServerConfig } from './config.js';
import { setUpRecovery, type RecoveryShareSet } from './recovery-init.js';
import { MIGRATION_KEY, type SealMigrationRecord } from './seal-migrate.js';
import { openStorage, requireExistingStore, storageName } from './storage.js';

/** Everything a running server holds; the API layer receives this and nothing else. */
export interface Runtime {
  config: ServerConfig;
  hsm: Hsm;
  storage: Storage;
  /** On PostgreSQL: a new session of the store's database, outside its pool (same URL, password and TLS). */
  newSessionClient?: NewPgClient;
  barrier: Barrier;
  keys: KeysContext;
  secrets: SecretStore;
  tokens: TokenStore;
  kubernetesAuth: KubernetesAuth;
  /** OIDC single sign-on (src/identity/oidc/). */
  oidcAuth: OidcAuth;
  policies: PolicyStore;
  /** Operator accounts: people's logins (password + TOTP), their lockout, re-authentication. */
  operators: OperatorStore;
  /** Groups: operators and SSO groups mapped to policies. */
  groups: GroupStore;
  audit: AuditLog;
  /** The checkpoint signing key (public half only in this process). */
  auditSigner: Pick<AuditSigner, 'fingerprint' | 'publicKeyPem'>;
  auditHmac: AuditHmac;
  /** Whether this replica leads (runs the background jobs); on SQLite always. */
  leadership: Leadership;
  jobs: BackgroundJobs;
  /** Root-key rotation: the API starts one; its rewrite runs as a background job on the leader. */
  rootRotation: RootRotation;
  /** Quorum approval: approval policies, the requests protected calls open, their one execution. */
  approvals: Approvals;
  /** The retention sweep of ended approval requests (every replica runs it). */
  approvalSweep: ApprovalSweep;
  startedAt: number;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Initialise an empty store and write the root token here (0600). Without it, an uninitialised store is refused. */
  initRootTokenFile?: string;
  /** Start a new audit chain even though the barrier remembers one (--new-audit-chain). */
  newAuditChain?: boolean;
  /**
   * With initRootTokenFile: split a recovery key into `shares` shares of which `threshold` recover
   * the root key (src/barrier/recovery.ts); `deliver` gets them once, after they are committed.
   * The store then wraps `wrapped` key material with a key in the barrier (wrap mode 'memory').
   */
  recovery?: { shares: number; threshold: number; deliver(shares: RecoveryShareSet): void };
  warn?: (message: string) => void;
}

/** The chain-start fields that record a seal migration (strings and numbers only, bounded). */
function migrationDetails(m: SealMigrationRecord): Record<string, string | number> {
  return {
    sealMigratedAt: m.at,
    sealFromTokenSerial: m.fromTokenSerial.slice(0, 64),
    sealToTokenSerial: m.toTokenSerial.slice(0, 64),
    sealToTokenLabel: m.toTokenLabel.slice(0, 64),
    lostKeys: m.lostKeys.length,
    ...(m.lostKeys.length > 0 ? { lostKeyNames: m.lostKeys.join(',').slice(0, 1024) } : {}),
  };
}

/** The limits on open approval requests: a per-person limit alone set above the default total (or the reverse) is capped by the other. */
function approvalLimits(config: ServerConfig): ApprovalLimits {
  const total = config.approvals?.maxOpen ?? DEFAULT_APPROVAL_LIMITS.total;
  return { total, perRequester: Math.min(total, config.approvals?.maxOpenPerRequester ?? DEFAULT_APPROVAL_LIMITS.perRequester) };
}

/** The operator store's settings from the config's `operators` section (defaults in the store). */
function operatorStoreOptions(config: ServerConfig): OperatorStoreOptions {
  const o = config.operators;
  return {
    ...(o?.lockout?.account ? { lockout: o.lockout.account } : {}),
    ...(o?.hashConcurrency !== undefined ? { hashConcurrency: o.hashConcurrency } : {}),
    ...(o?.hashQueue !== undefined ? { hashQueue: o.hashQueue } : {}),
    ...(o?.totpIssuer !== undefined ? { totpIssuer: o.totpIssuer } : {}),
    ...(o?.enrolmentHours !== undefined ? { enrolmentHours: o.enrolmentHours } : {}),
  };
}

/**
 * Start-up order matters for "no data touched": the HSM is opened (PIN checked) before storage,
 * and unsealing only reads. A wrong PIN, a missing module or a missing HSM key stops start-up
 * before anything is written.
 */
export async function startRuntime(config: ServerConfig, options: StartOptions = {}): Promise<Runtime> {
  if (!options.initRootTokenFile) requireExistingStore(config.storage);
  if (options.recovery) {
    if (!options.initRootTokenFile) throw new KeyholdError('ERR_CONFIG', 'recovery shares are made at initialisation only');
    checkRecoveryParameters(options.recovery.shares, options.recovery.threshold);
  }
  const hsm = await openHsm(config.hsm, { warn: options.warn });
  let storage: Storage | undefined;
  let unsealed: Unsealed | undefined;
  let auditLog: AuditLog | undefined;
  let replication: Replication | undefined;
  let wrapper: MaterialWrapper | undefined;
  let shared: SharedStorage | undefined;
  const warn = options.warn ?? ((x: string) => process.stderr.write(`keyhold: warning: ${x}\n`));
  try {
    storage = await openStorage(config.storage, { warn: options.warn });
    // Shared between replicas (PostgreSQL): the change feed, before anything caches a read.
    // (Loaded only for PostgreSQL, like the store itself: a SQLite server never loads `pg`.)
    shared = config.storage.postgres ? await (await import('../ha/shared-storage.js')).shareStorage(storage, warn) : undefined;
    let rootToken: string | undefined;
    const sealed = await readSealRecord(storage);
    if (sealed) {
      unsealed = await unsealRecord(hsm, sealed.record);
    } else if (options.initRootTokenFile) {
      // With recovery shares, wrapped material is wrapped in memory under a key in the barrier, so it outlives the token.
      unsealed = await initializeSeal(storage, hsm, { dataObject: config.seal?.dataObject === true, ...(options.recovery ? { wrap: { mode: 'memory' } as const } : {}) });
    } else {
      throw new KeyholdError('ERR_NOT_INITIALIZED', `${storageName(config.storage)} is not initialised; run "keyhold init --config FILE --root-token-file FILE" first`);
    }
    // With the keyring's older keys (records not rewritten yet since a rotation) and pinned derived keys.
    const { barrier, keyring } = await openBarrier(storage, unsealed);
    const initFile = options.initRootTokenFile;
    const firstInit = initFile !== undefined && !(await barrier.getJson('sys/initialized'));
    const sealView = barrier.view(MOUNTS.seal);
    let recoveryShares: RecoveryShareSet | undefined;
    if (options.recovery) {
      if (!firstInit) throw new KeyholdError('ERR_ALREADY_INITIALIZED', `${storageName(config.storage)} is already initialised; recovery shares are made at initialisation only`);
      if (unsealed.wrap.mode !== 'memory') throw new KeyholdError('ERR_ALREADY_INITIALIZED', 'an interrupted initialisation without recovery shares sealed this store with the HSM wrap key; start from an empty store to use recovery shares');
      recoveryShares = await setUpRecovery(storage, barrier, unsealed, options.recovery.shares, options.recovery.threshold);
    }
    // An in-memory material wrap key is made with the store, before `sys/initialized` says it is
    // made (so an init that crashed in between makes it when run again); required afterwards.
    wrapper = await openMaterialWrapper(hsm, unsealed.wrap, unsealed.wrapKey, barrier, firstInit);
    // A seal migrated to this token (keyhold seal migrate): audited below as the reason of a new chain.
    const migration = await sealView.get<SealMigrationRecord>(MIGRATION_KEY);
    const migrated = migration?.sealKeyLabel === unsealed.record.sealKeyLabel ? migration : undefined;
    if (migration && !migrated) {
      warn(`a seal migration of ${migration.at} to token serial ${migration.toTokenSerial} did not complete (the seal record does not name its key); ignoring it`);
      await sealView.delete(MIGRATION_KEY);
    }
    const auditKey = deriveRootKey(unsealed.rootKey, keyring, 'keyhold/audit-hmac/v1');
    const auditHmac = new AuditHmac(auditKey);
    zeroize(auditKey, unsealed.rootKey);
    // Each domain gets a view over its own prefix, never the barrier itself.
    const podTokens = barrier.view(MOUNTS.podTokens);
    const tokens = new TokenStore(tokenViews(barrier), { maxTtlSeconds: config.tokens?.maxTtlSeconds });
    let initializing = false;
    if (firstInit && initFile !== undefined) {
      initializing = true;
      // Handed out once the seal record holding their recovery copy is committed, before the root token.
      if (recoveryShares) options.recovery?.deliver(recoveryShares);
      // The only token exempt from the maximum TTL (issue 9): the one made at initialisation.
      rootToken = (await tokens.create({ policies: [ROOT_POLICY_NAME], displayName: 'root', neverExpires: true })).token;
      writeFileSync(initFile, rootToken + '\n', { mode: 0o600 });
      await barrier.putJson('sys/initialized', { at: new Date().toISOString() });
    }
    const error = (x: string) => process.stderr.write(`keyhold: error: ${x}\n`);
    const chainOptions = {
      newChain: options.newAuditChain === true || migrated !== undefined,
      ...(migrated ? { newChainReason: 'seal-migrate', startDetails: migrationDetails(migrated) } : {}),
      initializing,
      warn,
      error,
    };
    // On PostgreSQL the log is the database's audit table, written in the writes' transactions.
    const { log: audit, signer: auditSigner } = config.storage.postgres
      ? await (await import('../audit/pg-startup.js')).openPostgresAuditChain(storage as PostgresStorage, config.audit, barrier.view(MOUNTS.audit), hsm, chainOptions)
      : await openAuditChain({ ...config.audit, path: config.audit.path as string }, barrier.view(MOUNTS.audit), hsm, chainOptions);
    auditLog = audit;
    // The new chain's first entry records the migration: it is audited, and done.
    if (migrated) await sealView.delete(MIGRATION_KEY);
    const records = new KeyRecordStore(barrier.view(MOUNTS.keys));
    const material = new MaterialCache(hsm, wrapper);
    const kubernetesAuth = new KubernetesAuth(barrier.view(MOUNTS.kubernetes), podTokens, tokens, { warn });
    await kubernetesAuth.start();
    const groups = new GroupStore(barrier.view(MOUNTS.groups));
    // SSO persons get their policies from the groups their groups claim maps to, for as long as an operator's token lives.
    const oidcAuth = new OidcAuth(barrier.view(MOUNTS.oidc), tokens, groups, { tokenTtlSeconds: config.operators?.tokenTtlSeconds ?? DEFAULT_OPERATOR_TOKEN_TTL_SECONDS, neverConferred: [ROOT_POLICY_NAME] });
    // Background work (the token sweep, the revocation of deleted pods' tokens) runs while this
    // replica leads: always on SQLite, on the elected replica on PostgreSQL.
    replication = await startReplication(shared?.newSessionClient, warn);
    const rootRotation = new RootRotation({ storage, barrier, hsm, settings: config.rootRotation, warn });
    // Every replica follows rotations made elsewhere (PostgreSQL); the rewrite is the leader's.
    rootRotation.follow();
    await rootRotation.status(); // health's `rewriting` from the start, on followers too
    registerCoreJobs(replication.jobs, { tokens, kubernetesAuth, oidcAuth, rootRotation: rootRotation.job }, warn);
    replication.jobs.follow();
    const { leadership } = replication;
    const operators = new OperatorStore(barrier.view(MOUNTS.operators), operatorStoreOptions(config));
    const approvalPolicies = new ApprovalPolicyStore(barrier.view(MOUNTS.approvalPolicies), barrier.view(MOUNTS.approvals), storage.changes !== undefined);
    await approvalPolicies.load();
    const approvals = new Approvals({
      policies: approvalPolicies,
      requests: new ApprovalRequestStore(barrier.view(MOUNTS.approvals)),
      groups,
      operators,
      ttlSeconds: config.approvals?.ttlSeconds,
      limits: approvalLimits(config),
      // Credentials in a request body are shown to approvers only as this keyed hash (src/approvals/secret-fields.ts).
      mac: (value) => auditHmac.mac(`keyhold/approval-secret\0${value}`),
    });
    const approvalSweep = new ApprovalSweep({
      requests: approvals.requests,
      retentionSeconds: config.approvals?.retentionSeconds ?? DEFAULT_RETENTION_SECONDS,
      intervalSeconds: config.approvals?.sweepIntervalSeconds ?? DEFAULT_SWEEP_INTERVAL_SECONDS,
      audit: (record) => audit.append(record),
      auditHealthy: () => audit.healthy,
      warn,
    });
    approvalSweep.start();
    const runtime: Runtime = {
      config,
      hsm,
      storage,
      ...(shared ? { newSessionClient: shared.newSessionClient } : {}),
      barrier,
      keys: { hsm, wrapper, records, material },
      secrets: new SecretStore(barrier.view(MOUNTS.secrets)),
      tokens,
      kubernetesAuth,
      oidcAuth,
      policies: new PolicyStore(barrier.view(MOUNTS.policies)),
      operators,
      groups,
      audit,
      auditSigner,
      auditHmac,
      leadership,
      jobs: replication.jobs,
      rootRotation,
      approvals,
      approvalSweep,
      startedAt: Date.now(),
      async close() {
        // Before the audit log closes and the barrier seals: a pass under way finishes and records itself.
        await approvalSweep.stop();
        await replication?.close();
        rootRotation.close();
        await rootRotation.job.idle();
        kubernetesAuth.close();
        oidcAuth.close();
        await shared?.close();
        material.clear();
        wrapper?.close();
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
    wrapper?.close();
    await replication?.close();
    await shared?.close();
    await auditLog?.close().catch(() => undefined);
    await storage?.close().catch(() => undefined);
    await hsm.close();
    throw err;
  }
}
