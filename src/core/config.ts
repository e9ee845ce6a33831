import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { trustedProxyProblem } from '../api/client-address.js';
import { MAX_OPEN_PER_REQUESTER, MAX_OPEN_TOTAL } from '../approvals/open-index.js';
import { KeyholdError } from '../errors.js';
import { parsePostgresUrl } from '../storage/postgres-config.js';

/** What a module reads from its environment at C_Initialize (P11_KIT_SERVER_ADDRESS, a vendor's config path). */
const HsmEnv = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String());
const HsmEndpointFields = {
  module: Type.String({ minLength: 1 }),
  env: Type.Optional(HsmEnv),
  tokenLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  slot: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  pinEnv: Type.Optional(Type.String({ minLength: 1 })),
  pinFile: Type.Optional(Type.String({ minLength: 1 })),
};
/**
 * One endpoint (module, tokenLabel|slot, pinEnv|pinFile), or an HSM cluster: `members`, or
 * `endpoints.file` or `endpoints.configMap` (the operator's endpoint list) with a `memberTemplate`. See src/hsm/open.ts.
 */
const HsmSection = Type.Object({
  module: Type.Optional(HsmEndpointFields.module),
  env: HsmEndpointFields.env,
  tokenLabel: HsmEndpointFields.tokenLabel,
  slot: HsmEndpointFields.slot,
  pinEnv: HsmEndpointFields.pinEnv,
  pinFile: HsmEndpointFields.pinFile,
  sessions: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  healthCacheSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 300 })),
  members: Type.Optional(Type.Array(Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }), ...HsmEndpointFields }, { additionalProperties: false }), { minItems: 1, maxItems: 64 })),
  endpoints: Type.Optional(Type.Object({
    file: Type.Optional(Type.String({ minLength: 1 })),
    configMap: Type.Optional(Type.Object({ namespace: Type.String({ minLength: 1 }), name: Type.String({ minLength: 1 }), kubeconfig: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false })),
  }, { additionalProperties: false })),
  memberTemplate: Type.Optional(Type.Object(HsmEndpointFields, { additionalProperties: false })),
  moduleCopyDir: Type.Optional(Type.String({ minLength: 1 })),
}, { additionalProperties: false });

/** PostgreSQL (storage.postgres): see storage/postgres-config.ts for what each field means. */
const PostgresSection = Type.Object({
  url: Type.String({ minLength: 1 }),
  passwordFile: Type.Optional(Type.String({ minLength: 1 })),
  passwordEnv: Type.Optional(Type.String({ minLength: 1 })),
  tls: Type.Optional(Type.Object({
    caFile: Type.Optional(Type.String({ minLength: 1 })),
    certFile: Type.Optional(Type.String({ minLength: 1 })),
    keyFile: Type.Optional(Type.String({ minLength: 1 })),
    serverName: Type.Optional(Type.String({ minLength: 1 })),
    rejectUnauthorized: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false })),
  pool: Type.Optional(Type.Object({ max: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false })),
  statementTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
}, { additionalProperties: false });

/** Lockout after failed logins (src/operators/lockout.ts). */
const LockoutSection = Type.Object({
  threshold: Type.Integer({ minimum: 1, maximum: 1000 }),
  baseSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
  maxSeconds: Type.Integer({ minimum: 1, maximum: 7 * 86_400 }),
}, { additionalProperties: false });

/** Operator accounts (issue 12; README "Operator accounts"): people's logins with a password and TOTP. */
const OperatorsSection = Type.Object({
  /** Lifetime of an operator login's token (default 3600; the server maximum still clamps it). */
  tokenTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 86_400 })),
  /** The issuer authenticator apps show (default `keyhold`). */
  totpIssuer: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9 ._-]+$' })),
  /** How long a new or reset account may wait to enrol its second factor (default 72). */
  enrolmentHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 90 })),
  /** Password hashes at once (32 MiB each; default 2) and waiting (default 64). */
  hashConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
  hashQueue: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  /** Per account (kept in the barrier) and per client address (in memory); defaults in lockout.ts. */
  lockout: Type.Optional(Type.Object({ account: Type.Optional(LockoutSection), address: Type.Optional(LockoutSection) }, { additionalProperties: false })),
}, { additionalProperties: false });

export const ServerConfigSchema = Type.Object({
  listen: Type.String({ default: '127.0.0.1:8200' }),
  /** Exactly one of them (checked in validateConfig). */
  storage: Type.Object({
    sqlite: Type.Optional(Type.Object({ path: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
    postgres: Type.Optional(PostgresSection),
  }, { additionalProperties: false }),
  hsm: HsmSection,
  audit: Type.Object({
    /** The audit file: required with SQLite; with PostgreSQL the log is the `audit` table. */
    path: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * With PostgreSQL, the second sink: a directory where each process copies its chain, once
     * committed in the table, into a file of its own (`audit-<chain>.log`), verifiable offline.
     */
    mirrorDir: Type.Optional(Type.String({ minLength: 1 })),
    /** Rotate the active file once it is larger than this (default: never). */
    maxFileBytes: Type.Optional(Type.Integer({ minimum: 4096 })),
    /** HSM-signed checkpoint after this many entries (default 1000)... */
    checkpointEvery: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** ...and this often while there are new entries (default 10). */
    checkpointIntervalSeconds: Type.Optional(Type.Number({ minimum: 0.05, maximum: 86_400 })),
    /**
     * With PostgreSQL: how long the console's verification of the audit table (GET /v1/sys/audit/verify)
     * may run before it is stopped with 503 ERR_AUDIT_VERIFY_TIMEOUT (default 20).
     */
    verifyTimeoutSeconds: Type.Optional(Type.Number({ minimum: 0.1, maximum: 600 })),
  }, { additionalProperties: false }),
  /** How a new store is sealed (read at initialisation only; afterwards the seal record decides). */
  seal: Type.Optional(Type.Object({
    /** Keep the wrapped root key as a private CKO_DATA object in the token instead of in storage. */
    dataObject: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false })),
  log: Type.Optional(Type.Object({ level: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('silent')]) }, { additionalProperties: false })),
  /** Server-wide token limits: every token made through the API expires within `maxTtlSeconds` (default 768 h, as Vault's). */
  tokens: Type.Optional(Type.Object({ maxTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 366 * 24 * 3600 })) }, { additionalProperties: false })),
  /** Root-key rotation's background rewrite (README, "Rotating the root key"); defaults in src/barrier/rotation.ts. */
  rootRotation: Type.Optional(Type.Object({
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    pauseMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
    settleMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
  }, { additionalProperties: false })),
  /**
   * Quorum approval (src/approvals/): how long a request may wait for its approvals and its
   * execution (default 24 h); how many may be open (pending or approved) per person and in all
   * (defaults in open-index.ts); how long ended requests are kept (default 30 days; 0: for ever)
   * and how often the sweep that deletes them runs (defaults in sweep.ts).
   */
  approvals: Type.Optional(Type.Object({
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600 })),
    maxOpenPerRequester: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OPEN_PER_REQUESTER })),
    maxOpen: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OPEN_TOTAL })),
    retentionSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 * 366 * 24 * 3600 })),
    sweepIntervalSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 3600 })),
  }, { additionalProperties: false })),
  operators: Type.Optional(OperatorsSection),
  /** The web console (issue 12): served at /ui unless `enabled: false`; sessions started from a token last `sessionTtlSeconds` (default 1 h). */
  ui: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    sessionTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 24 * 3600 })),
  }, { additionalProperties: false })),
  api: Type.Optional(Type.Object({
    bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 })),
    // Slow clients (see API_TIMEOUT_DEFAULTS): a connection that trickles its headers or body is closed.
    headersTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
    keepAliveTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    /** Requests without valid credentials (no/invalid/expired token, failed logins) allowed per client address and window; then 429 (default 100 per 10 s). */
    unauthenticatedRateLimit: Type.Optional(Type.Object({
      max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
      windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
    }, { additionalProperties: false })),
    /**
     * Reverse proxies (load balancers, ingress controllers) whose X-Forwarded-For is believed, as
     * addresses or CIDRs (default none: the header is ignored and the client is the socket peer).
     * Each entry is checked in validateConfig (api/client-address.ts trustedProxyProblem).
     */
    trustedProxies: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256 })),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

export type ServerConfig = Static<typeof ServerConfigSchema>;

/**
 * How long a client may take: to send its request headers, to send its whole request (headers and
 * body; the handler's own time does not count), and to keep an idle connection open between
 * requests (above common load balancers' 60 s idle timeout, as fastify's default is).
 */
export const API_TIMEOUT_DEFAULTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 72_000 } as const;

/** The API timeouts of a config, defaults filled in. */
export function apiTimeouts(config: ServerConfig): { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number } {
  return {
    headersTimeoutMs: config.api?.headersTimeoutMs ?? API_TIMEOUT_DEFAULTS.headersTimeoutMs,
    requestTimeoutMs: config.api?.requestTimeoutMs ?? API_TIMEOUT_DEFAULTS.requestTimeoutMs,
    keepAliveTimeoutMs: config.api?.keepAliveTimeoutMs ?? API_TIMEOUT_DEFAULTS.keepAliveTimeoutMs,
  };
}

/** Environment overrides: KEYHOLD_<NAME> → config field. The PIN itself is never here: hsm.pinEnv names the variable that holds it. */
/** A config document before validation. */
export type RawConfig = { [field: string]: unknown; hsm?: Record<string, unknown>; audit?: Record<string, unknown> };

/** A whole number stays a string when it is not one, so validation names the field instead of a NaN. */
const wholeNumber = (v: string): number | string => (/^[0-9]{1,15}$/.test(v) ? Number(v) : v);

/** The postgres section of a raw document, if it has one (so env overrides keep its other fields). */
function postgresOf(c: RawConfig): Record<string, unknown> {
  const storage = c.storage as { postgres?: unknown } | undefined;
  return typeof storage?.postgres === 'object' && storage.postgres !== null ? storage.postgres as Record<string, unknown> : {};
}

const ENV_OVERRIDES: Array<[string, (c: RawConfig, v: string) => void]> = [
  ['KEYHOLD_LISTEN', (c, v) => { c.listen = v; }],
  ['KEYHOLD_STORAGE_PATH', (c, v) => { c.storage = { sqlite: { path: v } }; }],
  // The whole storage choice, as KEYHOLD_STORAGE_PATH is; the password still comes from a file or variable.
  ['KEYHOLD_STORAGE_POSTGRES_URL', (c, v) => { c.storage = { postgres: { ...postgresOf(c), url: v } }; }],
  ['KEYHOLD_STORAGE_POSTGRES_PASSWORD_FILE', (c, v) => { c.storage = { postgres: { ...postgresOf(c), passwordFile: v } }; }],
  ['KEYHOLD_AUDIT_PATH', (c, v) => { (c.audit ??= {}).path = v; }],
  ['KEYHOLD_HSM_MODULE', (c, v) => { (c.hsm ??= {}).module = v; }],
  ['KEYHOLD_HSM_TOKEN_LABEL', (c, v) => { (c.hsm ??= {}).tokenLabel = v; }],
  ['KEYHOLD_HSM_SLOT', (c, v) => { (c.hsm ??= {}).slot = v; }],
  ['KEYHOLD_HSM_PIN_FILE', (c, v) => { (c.hsm ??= {}).pinFile = v; }],
  ['KEYHOLD_HSM_PIN_ENV', (c, v) => { (c.hsm ??= {}).pinEnv = v; }],
  ['KEYHOLD_LOG_LEVEL', (c, v) => { c.log = { level: v }; }],
  ['KEYHOLD_TOKENS_MAX_TTL_SECONDS', (c, v) => { c.tokens = { ...(c.tokens as object | undefined), maxTtlSeconds: wholeNumber(v) }; }],
  ['KEYHOLD_APPROVALS_TTL_SECONDS', (c, v) => { approvalsOf(c).ttlSeconds = wholeNumber(v); }],
  ['KEYHOLD_APPROVALS_MAX_OPEN_PER_REQUESTER', (c, v) => { approvalsOf(c).maxOpenPerRequester = wholeNumber(v); }],
  ['KEYHOLD_APPROVALS_MAX_OPEN', (c, v) => { approvalsOf(c).maxOpen = wholeNumber(v); }],
  ['KEYHOLD_APPROVALS_RETENTION_SECONDS', (c, v) => { approvalsOf(c).retentionSeconds = wholeNumber(v); }],
  ['KEYHOLD_APPROVALS_SWEEP_INTERVAL_SECONDS', (c, v) => { approvalsOf(c).sweepIntervalSeconds = wholeNumber(v); }],
  // MAX/SECONDS, e.g. 100/10; anything else is left as text for validation to refuse.
  ['KEYHOLD_UNAUTHENTICATED_RATE_LIMIT', (c, v) => {
    const m = /^(\d+)\/(\d+)$/.exec(v);
    const api = (typeof c.api === 'object' && c.api !== null ? c.api : (c.api = {})) as Record<string, unknown>;
    api.unauthenticatedRateLimit = m ? { max: Number(m[1]), windowSeconds: Number(m[2]) } : v;
  }],
  // Comma-separated addresses or CIDRs, e.g. 10.0.0.0/8,127.0.0.1 (replaces the file's list).
  ['KEYHOLD_TRUSTED_PROXIES', (c, v) => {
    const api = (typeof c.api === 'object' && c.api !== null ? c.api : (c.api = {})) as Record<string, unknown>;
    api.trustedProxies = v.split(',').map((e) => e.trim());
  }],
  // Operator accounts (issue 12): THRESHOLD/BASE_SECONDS/MAX_SECONDS, e.g. 5/30/900.
  ['KEYHOLD_OPERATORS_TOKEN_TTL_SECONDS', (c, v) => { operatorsOf(c).tokenTtlSeconds = wholeNumber(v); }],
  ['KEYHOLD_OPERATORS_ACCOUNT_LOCKOUT', (c, v) => { lockoutOf(c).account = lockoutSetting(v); }],
  ['KEYHOLD_OPERATORS_ADDRESS_LOCKOUT', (c, v) => { lockoutOf(c).address = lockoutSetting(v); }],
];

function approvalsOf(c: RawConfig): Record<string, unknown> {
  return (typeof c.approvals === 'object' && c.approvals !== null ? c.approvals : (c.approvals = {})) as Record<string, unknown>;
}
function operatorsOf(c: RawConfig): Record<string, unknown> {
  return (typeof c.operators === 'object' && c.operators !== null ? c.operators : (c.operators = {})) as Record<string, unknown>;
}
function lockoutOf(c: RawConfig): Record<string, unknown> {
  const o = operatorsOf(c);
  return (typeof o.lockout === 'object' && o.lockout !== null ? o.lockout : (o.lockout = {})) as Record<string, unknown>;
}
/** `T/B/M`; anything else is left as text for validation to refuse. */
function lockoutSetting(v: string): unknown {
  const m = /^(\d{1,7})\/(\d{1,7})\/(\d{1,7})$/.exec(v);
  return m ? { threshold: Number(m[1]), baseSeconds: Number(m[2]), maxSeconds: Number(m[3]) } : v;
}

/** Applies the KEYHOLD_* overrides set in `env` (all of them, or only those named in `only`) to a raw config document. */
export function applyEnvOverrides(raw: RawConfig, env: NodeJS.ProcessEnv, only?: readonly string[]): void {
  for (const [name, apply] of ENV_OVERRIDES) {
    if (only !== undefined && !only.includes(name)) continue;
    const value = env[name];
    if (value !== undefined && value !== '') apply(raw, value);
  }
}

export function validateConfig(raw: unknown, source: string): ServerConfig {
  const withDefaults = Value.Default(ServerConfigSchema, structuredClone(raw));
  // fastify's trustProxy takes `true` (believe every X-Forwarded-For); keyhold does not: say why, not only "Expected array".
  const trust = (withDefaults as { api?: { trustedProxies?: unknown } } | undefined)?.api?.trustedProxies;
  if (typeof trust === 'boolean' || typeof trust === 'number') {
    throw new KeyholdError('ERR_CONFIG', `${source}: api.trustedProxies must be a list of the proxies' addresses or CIDRs (e.g. [10.0.0.0/8]); ${JSON.stringify(trust)} is not accepted, since trusting every sender (or a hop count) lets any client choose the address it is limited and audited under`);
  }
  const errors = [...Value.Errors(ServerConfigSchema, withDefaults)];
  if (errors.length > 0) {
    const list = errors.slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`).join('; ');
    throw new KeyholdError('ERR_CONFIG', `invalid configuration in ${source}: ${list}`);
  }
  const config = withDefaults as ServerConfig;
  if ((config.storage.sqlite === undefined) === (config.storage.postgres === undefined)) throw new KeyholdError('ERR_CONFIG', `${source}: set exactly one of storage.sqlite and storage.postgres`);
  // Refused at load, not at first connect: a password in the URL, query parameters, a bad shape.
  if (config.storage.postgres) parsePostgresUrl(config.storage.postgres.url);
  if (config.storage.sqlite && config.audit.path === undefined) throw new KeyholdError('ERR_CONFIG', `${source}: set audit.path (the audit file)`);
  // Each process's chain is in the table; the file sink beside it is a per-chain copy (audit.mirrorDir).
  if (config.storage.postgres && config.audit.path !== undefined) throw new KeyholdError('ERR_CONFIG', `${source}: with storage.postgres the audit log is the database's audit table; remove audit.path (for a file copy of each process's chain as a second sink, set audit.mirrorDir)`);
  if (config.storage.sqlite && config.audit.mirrorDir !== undefined) throw new KeyholdError('ERR_CONFIG', `${source}: audit.mirrorDir is for storage.postgres; with SQLite the audit log is the file at audit.path`);
  validateHsmSection(config.hsm, source);
  for (const [which, l] of Object.entries(config.operators?.lockout ?? {})) {
    if (l && l.baseSeconds > l.maxSeconds) throw new KeyholdError('ERR_CONFIG', `${source}: operators.lockout.${which}.baseSeconds must not exceed maxSeconds`);
  }
  config.api?.trustedProxies?.forEach((entry, i) => {
    const problem = trustedProxyProblem(entry);
    if (problem !== undefined) throw new KeyholdError('ERR_CONFIG', `${source}: api.trustedProxies[${i}] ${JSON.stringify(entry)} ${problem}`);
  });
  const approvals = config.approvals;
  // A per-person limit above the total could never be reached: a typo, most likely (one alone is capped by the other's default).
  if (approvals?.maxOpenPerRequester !== undefined && approvals.maxOpen !== undefined && approvals.maxOpenPerRequester > approvals.maxOpen) {
    throw new KeyholdError('ERR_CONFIG', `${source}: approvals.maxOpenPerRequester (${approvals.maxOpenPerRequester}) must not exceed approvals.maxOpen (${approvals.maxOpen})`);
  }
  const timeouts = apiTimeouts(config);
  // Node refuses the pair otherwise: the headers are part of the request.
  if (timeouts.headersTimeoutMs > timeouts.requestTimeoutMs) throw new KeyholdError('ERR_CONFIG', `${source}: api.headersTimeoutMs must not exceed api.requestTimeoutMs`);
  return config;
}

/** Reads YAML, applies KEYHOLD_* overrides, resolves relative paths against the file's folder. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  let raw: RawConfig;
  try {
    raw = (parseYaml(readFileSync(path, 'utf8')) ?? {}) as RawConfig;
  } catch (cause) {
    throw new KeyholdError('ERR_CONFIG', `cannot read config ${path}: ${(cause as Error).message}`, { cause });
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new KeyholdError('ERR_CONFIG', `config ${path} must be a YAML mapping`);
  applyEnvOverrides(raw, env);
  const config = validateConfig(raw, path);
  const base = dirname(resolve(path));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (config.storage.sqlite) config.storage.sqlite.path = abs(config.storage.sqlite.path);
  const pgConfig = config.storage.postgres;
  if (pgConfig) {
    if (pgConfig.passwordFile) pgConfig.passwordFile = abs(pgConfig.passwordFile);
    for (const f of ['caFile', 'certFile', 'keyFile'] as const) {
      const file = pgConfig.tls?.[f];
      if (file !== undefined && pgConfig.tls) pgConfig.tls[f] = abs(file);
    }
  }
  if (config.audit.path !== undefined) config.audit.path = abs(config.audit.path);
  if (config.audit.mirrorDir !== undefined) config.audit.mirrorDir = abs(config.audit.mirrorDir);
  resolveHsmPaths(config.hsm, abs);
  return config;
}

/** The hsm section's file paths made absolute (the server config and the KMS plugin's --hsm-config alike). */
function resolveHsmPaths(hsm: ServerConfig['hsm'], abs: (p: string) => string): void {
  if (hsm.pinFile) hsm.pinFile = abs(hsm.pinFile);
  for (const member of hsm.members ?? []) if (member.pinFile) member.pinFile = abs(member.pinFile);
  if (hsm.endpoints?.file) hsm.endpoints.file = abs(hsm.endpoints.file);
  if (hsm.endpoints?.configMap?.kubeconfig) hsm.endpoints.configMap.kubeconfig = abs(hsm.endpoints.configMap.kubeconfig);
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (!match || port > 65535) throw new KeyholdError('ERR_CONFIG', `listen address "${listen}" must be HOST:PORT`);
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** Exactly one form of the hsm section; every endpoint names its token and a PIN source. */
function validateHsmSection(hsm: ServerConfig['hsm'], source: string): void {
  const forms = [hsm.module !== undefined, hsm.members !== undefined, hsm.endpoints !== undefined].filter(Boolean).length;
  if (forms !== 1) throw new KeyholdError('ERR_CONFIG', `${source}: set exactly one of hsm.module (one endpoint), hsm.members (a cluster) and hsm.endpoints (an endpoint list)`);
  if (hsm.endpoints) {
    if (!hsm.endpoints.file && !hsm.endpoints.configMap) throw new KeyholdError('ERR_CONFIG', `${source}: set hsm.endpoints.file (the mounted endpoints.json) or hsm.endpoints.configMap`);
    if (!hsm.memberTemplate) throw new KeyholdError('ERR_CONFIG', `${source}: hsm.endpoints needs hsm.memberTemplate`);
  }
  const endpoints: Array<[string, { tokenLabel?: string; slot?: string; pinEnv?: string; pinFile?: string }]> = hsm.members
    ? hsm.members.map((m) => [`hsm.members[${m.name}]`, m])
    : [[hsm.memberTemplate ? 'hsm.memberTemplate' : 'hsm', hsm.memberTemplate ?? hsm]];
  for (const [where, e] of endpoints) {
    if (!e.tokenLabel && !e.slot) throw new KeyholdError('ERR_CONFIG', `${source}: set ${where}.tokenLabel or ${where}.slot`);
    if (!e.pinEnv && !e.pinFile) throw new KeyholdError('ERR_CONFIG', `${source}: set ${where}.pinEnv or ${where}.pinFile (the PIN is never part of the config)`);
  }
  if (hsm.members && new Set(hsm.members.map((m) => m.name)).size !== hsm.members.length) throw new KeyholdError('ERR_CONFIG', `${source}: hsm.members names must be unique`);
}

/**
 * A file holding only an `hsm` section (YAML or JSON), for commands without a server config (the
 * KMS plugin's --hsm-config): validated like the server's, relative paths against the file's folder.
 */
export function loadHsmSection(file: string): ServerConfig['hsm'] {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new KeyholdError('ERR_CONFIG', `cannot read HSM configuration ${file}`, { cause });
  }
  const section = (raw as { hsm?: unknown } | null)?.hsm ?? raw;
  const errors = [...Value.Errors(HsmSection, section)];
  if (errors.length > 0) throw new KeyholdError('ERR_CONFIG', `invalid HSM configuration in ${file}: ${errors.slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`).join('; ')}`);
  const hsm = section as ServerConfig['hsm'];
  validateHsmSection(hsm, file);
  resolveHsmPaths(hsm, (p) => (isAbsolute(p) ? p : resolve(dirname(resolve(file)), p)));
  return hsm;
}
