/**
 * The audit entry and its hash chain. Each stored line is the canonical JSON of the entry including
 * `hash` = sha256(canonical JSON of the entry without `hash`), and `prev` = the previous entry's hash.
 * Because every entry seals itself, altering any byte of entry N is detected at N, not only at N+1.
 */
import { hash } from 'node:crypto';
import { canonicalJson } from './canonical.js';

export interface AuditActor {
  /** The token's accessor: non-secret, so an operator can look the token up or revoke it from a record. */
  accessor?: string;
  tokenId?: string;
  policies?: string[];
  selectors?: string[];
}

export interface AuditOutcome {
  status: number;
  code?: string;
}

export interface AuditEntry {
  seq: number;
  /** ISO 8601 UTC, as produced by Date#toISOString. */
  time: string;
  /** Hash of the previous entry, or GENESIS_HASH for seq 1. */
  prev: string;
  type: 'request' | 'response';
  requestId: string;
  actor?: AuditActor;
  operation: string;
  path: string;
  outcome?: AuditOutcome;
  /** Extra facts; sensitive values must be AuditHmac outputs, never clear text. */
  fields?: Record<string, string>;
}

/**
 * Entries the log writes about itself (not about a request). Rare, so they are serialised with the
 * generic canonicalJson; request entries keep the hand-written fast path below.
 * - chain-start: first entry of every chain (data.chain is its random id; data.reason, and the
 *   previous chain's id and checkpointed head when an operator started a new one).
 * - checkpoint: an HSM signature over (chain, head seq, head hash, time); see checkpoint.ts.
 * - repair: bytes of a torn final line dropped at start (data.droppedBytes).
 * - recovered: the log was failed (data.reason) and became writable again without a restart.
 */
export const SYSTEM_ENTRY_TYPES = ['chain-start', 'checkpoint', 'repair', 'recovered'] as const;
export type SystemEntryType = typeof SYSTEM_ENTRY_TYPES[number];

export interface SystemEntry {
  seq: number;
  time: string;
  prev: string;
  type: SystemEntryType;
  data: Record<string, string | number>;
}

export type AnyAuditEntry = AuditEntry | SystemEntry;
export type SealedAnyAuditEntry = AnyAuditEntry & { hash: string };

export function isSystemType(type: unknown): type is SystemEntryType {
  return (SYSTEM_ENTRY_TYPES as readonly unknown[]).includes(type);
}

/** What callers hand to the log; the log assigns seq, time and prev. */
export type AuditRecord = Omit<AuditEntry, 'seq' | 'prev' | 'time'>;

/** An entry as stored on disk: sealed with its own hash. */
export type SealedAuditEntry = AuditEntry & { hash: string };

export interface AuditHead {
  seq: number;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

export function sha256Hex(data: string | Buffer): string {
  // One-shot hash (Node ≥ 20.12): cheaper than createHash().update().digest() on this per-request path.
  return hash('sha256', data, 'hex');
}

/**
 * canonicalJson specialised to the entry's fixed shape (keys written in sorted order by hand):
 * sealing runs twice per request, and the generic version's sorting showed up in profiles. The
 * output is byte-identical to canonicalJson; test/unit/audit pins that.
 */
function sortedFields(fields: Record<string, string>): string {
  const keys = Object.keys(fields).filter((k) => fields[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(fields[k])}`).join(',')}}`;
}

/** Actors are shared objects (one per token), so their text is built once. Do not mutate an actor after logging it. */
const actorTexts = new WeakMap<AuditActor, string>();

function actorText(actor: AuditActor): string {
  let text = actorTexts.get(actor);
  if (text === undefined) {
    const a: string[] = [];
    if (actor.accessor !== undefined) a.push(`"accessor":${JSON.stringify(actor.accessor)}`);
    if (actor.policies !== undefined) a.push(`"policies":${JSON.stringify(actor.policies)}`);
    if (actor.selectors !== undefined) a.push(`"selectors":${JSON.stringify(actor.selectors)}`);
    if (actor.tokenId !== undefined) a.push(`"tokenId":${JSON.stringify(actor.tokenId)}`);
    text = `"actor":{${a.join(',')}}`;
    actorTexts.set(actor, text);
  }
  return text;
}

/** The canonical text split where `hash` sorts in: after actor and fields, before operation. */
function entryHalves(entry: AuditEntry): [head: string, tail: string] {
  const head: string[] = [];
  const { actor, outcome } = entry;
  if (actor !== undefined) head.push(actorText(actor));
  if (entry.fields !== undefined) head.push(`"fields":${sortedFields(entry.fields)}`);
  const outcomeText = outcome === undefined ? ''
    : `"outcome":{${outcome.code !== undefined ? `"code":${JSON.stringify(outcome.code)},` : ''}"status":${JSON.stringify(outcome.status)}},`;
  const tail = `"operation":${JSON.stringify(entry.operation)},${outcomeText}"path":${JSON.stringify(entry.path)},"prev":${JSON.stringify(entry.prev)},`
    + `"requestId":${JSON.stringify(entry.requestId)},"seq":${JSON.stringify(entry.seq)},"time":${JSON.stringify(entry.time)},"type":${JSON.stringify(entry.type)}`;
  return [head.length > 0 ? `${head.join(',')},` : '', tail];
}

export function serializeEntry(entry: AuditEntry, hash?: string): string {
  const [head, tail] = entryHalves(entry);
  return hash === undefined ? `{${head}${tail}}` : `{${head}"hash":${JSON.stringify(hash)},${tail}}`;
}

/** sha256 of the canonical JSON of the entry without its `hash` field. */
export function entryHash(entry: AnyAuditEntry | SealedAnyAuditEntry): string {
  const { hash: _ignored, ...content } = entry as SealedAnyAuditEntry;
  return sha256Hex(canonicalJson(content));
}

/** Seals an entry: returns it with `hash` set and the exact line to write (no newline). */
/** The hash and line of an entry, without building the sealed object (the writer's hot path). */
export function sealLine(entry: AuditEntry): { hash: string; line: string } {
  const [head, tail] = entryHalves(entry);
  const hash = sha256Hex(`{${head}${tail}}`);
  return { hash, line: `{${head}"hash":"${hash}",${tail}}` };
}

/**
 * Checks what a caller of the log controls (the log makes seq, time and prev itself). Types
 * already say this; the check keeps a JS caller or a NaN from writing a line the verifier rejects.
 */
export function recordProblem(record: AuditRecord): string | undefined {
  if (record.type !== 'request' && record.type !== 'response') return 'type is not "request" or "response"';
  if (typeof record.requestId !== 'string' || record.requestId === '') return 'requestId is not a non-empty string';
  if (typeof record.operation !== 'string' || typeof record.path !== 'string') return 'operation or path is not a string';
  const { outcome, fields, actor } = record;
  if (outcome !== undefined && (!Number.isSafeInteger(outcome.status) || (outcome.code !== undefined && typeof outcome.code !== 'string'))) return 'outcome is malformed';
  if (fields !== undefined) {
    for (const key in fields) if (typeof fields[key] !== 'string') return 'fields is not a map of strings';
  }
  if (actor !== undefined && !actorTexts.has(actor)) return entryShapeProblem({ seq: 1, time: '2000-01-01T00:00:00.000Z', prev: GENESIS_HASH, ...record }, false);
  return undefined;
}

/** The hash and line of a system entry (generic canonical form: these are rare). */
export function sealSystemLine(entry: SystemEntry): { hash: string; line: string } {
  const hash = sha256Hex(canonicalJson(entry));
  return { hash, line: canonicalJson({ ...entry, hash }) };
}

export function sealEntry(entry: AuditEntry): { sealed: SealedAuditEntry; line: string } {
  const [head, tail] = entryHalves(entry);
  const hash = sha256Hex(`{${head}${tail}}`);
  return { sealed: { ...entry, hash }, line: `{${head}"hash":"${hash}",${tail}}` };
}

export const HEX64 = /^[0-9a-f]{64}$/;
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ENTRY_KEYS = ['seq', 'time', 'prev', 'type', 'requestId', 'actor', 'operation', 'path', 'outcome', 'fields', 'hash'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isStringArray = (value: unknown): boolean => Array.isArray(value) && value.every((v) => typeof v === 'string');

function unknownKey(obj: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  return Object.keys(obj).find((key) => !allowed.includes(key));
}

/**
 * Describes what is wrong with the shape of an entry, or returns undefined. The writer checks every
 * entry with this before assigning it a seq, so the log never contains a line the verifier rejects.
 */
export function entryShapeProblem(value: unknown, sealed: boolean): string | undefined {
  if (!isObject(value)) return 'entry is not an object';
  if (isSystemType(value['type'])) return systemShapeProblem(value, sealed);
  const extra = unknownKey(value, sealed ? ENTRY_KEYS : ENTRY_KEYS.slice(0, -1));
  if (extra !== undefined) return `unknown field ${JSON.stringify(extra)}`;
  const { seq, time, prev, type, requestId, actor, operation, path, outcome, fields, hash } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'seq is not a positive integer';
  if (typeof time !== 'string' || !ISO_TIME.test(time)) return 'time is not an ISO timestamp';
  if (typeof prev !== 'string' || !HEX64.test(prev)) return 'prev is not a sha256 hex digest';
  if (sealed && (typeof hash !== 'string' || !HEX64.test(hash))) return 'hash is not a sha256 hex digest';
  if (type !== 'request' && type !== 'response') return `type is not one of request, response, ${SYSTEM_ENTRY_TYPES.join(', ')}`;
  if (typeof requestId !== 'string' || requestId === '') return 'requestId is not a non-empty string';
  if (typeof operation !== 'string') return 'operation is not a string';
  if (typeof path !== 'string') return 'path is not a string';
  if (actor !== undefined) {
    if (!isObject(actor) || unknownKey(actor, ['accessor', 'tokenId', 'policies', 'selectors']) !== undefined) return 'actor is malformed';
    if (actor['accessor'] !== undefined && typeof actor['accessor'] !== 'string') return 'actor.accessor is not a string';
    if (actor['tokenId'] !== undefined && typeof actor['tokenId'] !== 'string') return 'actor.tokenId is not a string';
    if (actor['policies'] !== undefined && !isStringArray(actor['policies'])) return 'actor.policies is not a string array';
    if (actor['selectors'] !== undefined && !isStringArray(actor['selectors'])) return 'actor.selectors is not a string array';
  }
  if (outcome !== undefined) {
    if (!isObject(outcome) || unknownKey(outcome, ['status', 'code']) !== undefined) return 'outcome is malformed';
    if (typeof outcome['status'] !== 'number' || !Number.isSafeInteger(outcome['status'])) return 'outcome.status is not an integer';
    if (outcome['code'] !== undefined && typeof outcome['code'] !== 'string') return 'outcome.code is not a string';
  }
  if (fields !== undefined) {
    if (!isObject(fields) || !Object.values(fields).every((v) => typeof v === 'string')) return 'fields is not a map of strings';
  }
  return undefined;
}

const SYSTEM_KEYS = ['seq', 'time', 'prev', 'type', 'data', 'hash'];

/** Shape of a system entry; what each type's data must hold is checked by the chain verifier. */
function systemShapeProblem(value: Record<string, unknown>, sealed: boolean): string | undefined {
  const extra = unknownKey(value, sealed ? SYSTEM_KEYS : SYSTEM_KEYS.slice(0, -1));
  if (extra !== undefined) return `unknown field ${JSON.stringify(extra)}`;
  const { seq, time, prev, data, hash } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'seq is not a positive integer';
  if (typeof time !== 'string' || !ISO_TIME.test(time)) return 'time is not an ISO timestamp';
  if (typeof prev !== 'string' || !HEX64.test(prev)) return 'prev is not a sha256 hex digest';
  if (sealed && (typeof hash !== 'string' || !HEX64.test(hash))) return 'hash is not a sha256 hex digest';
  if (!isObject(data)) return 'data is not an object';
  for (const v of Object.values(data)) {
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isSafeInteger(v))) return 'data is not a map of strings and integers';
  }
  return undefined;
}
