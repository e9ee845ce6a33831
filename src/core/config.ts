import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { KeyholdError } from '../errors.js';

const HsmSection = Type.Object({
  module: Type.String({ minLength: 1 }),
  tokenLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  slot: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  pinEnv: Type.Optional(Type.String({ minLength: 1 })),
  pinFile: Type.Optional(Type.String({ minLength: 1 })),
  sessions: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  healthCacheSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 300 })),
}, { additionalProperties: false });

export const ServerConfigSchema = Type.Object({
  listen: Type.String({ default: '127.0.0.1:8200' }),
  storage: Type.Object({ sqlite: Type.Object({ path: Type.String({ minLength: 1 }) }, { additionalProperties: false }) }, { additionalProperties: false }),
  hsm: HsmSection,
  audit: Type.Object({
    path: Type.String({ minLength: 1 }),
    /** Rotate the active file once it is larger than this (default: never). */
    maxFileBytes: Type.Optional(Type.Integer({ minimum: 4096 })),
    /** HSM-signed checkpoint after this many entries (default 1000)... */
    checkpointEvery: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** ...and this often while there are new entries (default 10). */
    checkpointIntervalSeconds: Type.Optional(Type.Number({ minimum: 0.05, maximum: 86_400 })),
  }, { additionalProperties: false }),
  log: Type.Optional(Type.Object({ level: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('silent')]) }, { additionalProperties: false })),
  api: Type.Optional(Type.Object({ bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 })) }, { additionalProperties: false })),
}, { additionalProperties: false });

export type ServerConfig = Static<typeof ServerConfigSchema>;

/** Environment overrides: KEYHOLD_<NAME> → config field. The PIN itself is never here: hsm.pinEnv names the variable that holds it. */
/** A config document before validation. */
type RawConfig = { [field: string]: unknown; hsm?: Record<string, unknown>; audit?: Record<string, unknown> };

const ENV_OVERRIDES: Array<[string, (c: RawConfig, v: string) => void]> = [
  ['KEYHOLD_LISTEN', (c, v) => { c.listen = v; }],
  ['KEYHOLD_STORAGE_PATH', (c, v) => { c.storage = { sqlite: { path: v } }; }],
  ['KEYHOLD_AUDIT_PATH', (c, v) => { (c.audit ??= {}).path = v; }],
  ['KEYHOLD_HSM_MODULE', (c, v) => { (c.hsm ??= {}).module = v; }],
  ['KEYHOLD_HSM_TOKEN_LABEL', (c, v) => { (c.hsm ??= {}).tokenLabel = v; }],
  ['KEYHOLD_HSM_SLOT', (c, v) => { (c.hsm ??= {}).slot = v; }],
  ['KEYHOLD_HSM_PIN_FILE', (c, v) => { (c.hsm ??= {}).pinFile = v; }],
  ['KEYHOLD_HSM_PIN_ENV', (c, v) => { (c.hsm ??= {}).pinEnv = v; }],
  ['KEYHOLD_LOG_LEVEL', (c, v) => { c.log = { level: v }; }],
];

export function validateConfig(raw: unknown, source: string): ServerConfig {
  const withDefaults = Value.Default(ServerConfigSchema, structuredClone(raw));
  const errors = [...Value.Errors(ServerConfigSchema, withDefaults)];
  if (errors.length > 0) {
    const list = errors.slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`).join('; ');
    throw new KeyholdError('ERR_CONFIG', `invalid configuration in ${source}: ${list}`);
  }
  const config = withDefaults as ServerConfig;
  if (!config.hsm.tokenLabel && !config.hsm.slot) throw new KeyholdError('ERR_CONFIG', `${source}: set hsm.tokenLabel or hsm.slot`);
  if (!config.hsm.pinEnv && !config.hsm.pinFile) throw new KeyholdError('ERR_CONFIG', `${source}: set hsm.pinEnv or hsm.pinFile (the PIN is never part of the config)`);
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
  for (const [name, apply] of ENV_OVERRIDES) {
    const value = env[name];
    if (value !== undefined && value !== '') apply(raw, value);
  }
  const config = validateConfig(raw, path);
  const base = dirname(resolve(path));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  config.storage.sqlite.path = abs(config.storage.sqlite.path);
  config.audit.path = abs(config.audit.path);
  if (config.hsm.pinFile) config.hsm.pinFile = abs(config.hsm.pinFile);
  return config;
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (!match || port > 65535) throw new KeyholdError('ERR_CONFIG', `listen address "${listen}" must be HOST:PORT`);
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
}
