/**
 * Offline verification of an audit file, and the scan FileAuditLog.open uses to resume the chain.
 * Reports the first line that is not a well-formed, canonical, self-consistent successor of the one
 * before it, so the exact entry that was altered, removed or reordered is named.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { KeyholdError } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { entryHash, entryShapeProblem, GENESIS_HASH, type AuditHead, type SealedAuditEntry } from './entry.js';

export type AuditVerifyResult =
  | { ok: true; entries: number; lastHash: string }
  /** badSeq is the seq expected at the failing line; line is 1-based; entries counts the good ones before it. */
  | { ok: false; entries: number; badSeq: number; line: number; reason: string };

export interface AuditScan {
  result: AuditVerifyResult;
  /** The last good entry (seq 0 and GENESIS_HASH when there is none). */
  head: AuditHead;
  /** Byte length of the valid prefix (through the newline of the last good entry). */
  validBytes: number;
  /** The failure is an incomplete final line without newline: a write torn by a crash. */
  tornTail: boolean;
}

const CHUNK = 64 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface RawLine {
  bytes: Buffer;
  complete: boolean;
}

async function* readLines(handle: FileHandle): AsyncGenerator<RawLine> {
  const chunk = Buffer.alloc(CHUNK);
  let position = 0;
  let carry = Buffer.alloc(0);
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, CHUNK, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const data = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
    let from = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, from)) {
      yield { bytes: data.subarray(from, nl), complete: true };
      from = nl + 1;
    }
    carry = data.subarray(from);
  }
  if (carry.length > 0) yield { bytes: carry, complete: false };
}

/** Returns the parsed entry, or why this line cannot follow an entry with `prevHash` at `expectedSeq - 1`. */
function checkLine(bytes: Buffer, expectedSeq: number, prevHash: string): SealedAuditEntry | string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return 'not valid UTF-8';
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  const problem = entryShapeProblem(parsed, true);
  if (problem !== undefined) return problem;
  const entry = parsed as SealedAuditEntry;
  // Byte equality with the canonical form rules out edits that parse to the same value.
  if (canonicalJson(entry) !== text) return 'not in canonical form';
  if (entryHash(entry) !== entry.hash) return 'hash does not match the entry content';
  if (entry.seq !== expectedSeq) return `seq is ${entry.seq}, expected ${expectedSeq}`;
  if (entry.prev !== prevHash) return 'prev does not match the hash of the previous entry';
  return entry;
}

/** Scans an open audit file from the start. `expectedHead` (kept elsewhere) detects a truncated tail. */
export async function scanAuditHandle(handle: FileHandle, expectedHead?: AuditHead): Promise<AuditScan> {
  let entries = 0;
  let lastHash = GENESIS_HASH;
  let validBytes = 0;
  const fail = (reason: string, tornTail = false): AuditScan => ({
    result: { ok: false, entries, badSeq: entries + 1, line: entries + 1, reason },
    head: { seq: entries, hash: lastHash },
    validBytes,
    tornTail,
  });
  for await (const { bytes, complete } of readLines(handle)) {
    if (!complete) return fail('incomplete final line (no trailing newline)', true);
    const checked = checkLine(bytes, entries + 1, lastHash);
    if (typeof checked === 'string') return fail(checked);
    if (expectedHead !== undefined && checked.seq === expectedHead.seq && checked.hash !== expectedHead.hash) {
      return fail('hash differs from the expected head');
    }
    entries += 1;
    lastHash = checked.hash;
    validBytes += bytes.length + 1;
  }
  if (expectedHead !== undefined && entries < expectedHead.seq) {
    return fail(`log ends at seq ${entries} but the expected head is seq ${expectedHead.seq} (truncated)`);
  }
  return { result: { ok: true, entries, lastHash }, head: { seq: entries, hash: lastHash }, validBytes, tornTail: false };
}

/** Verifies the whole hash chain of an audit file. Throws ERR_AUDIT_UNAVAILABLE if it cannot be read. */
export async function verifyAuditFile(path: string, expectedHead?: AuditHead): Promise<AuditVerifyResult> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', `cannot open audit file: ${(err as Error).message}`, { cause: err });
  }
  try {
    return (await scanAuditHandle(handle, expectedHead)).result;
  } catch (err) {
    throw new KeyholdError('ERR_AUDIT_UNAVAILABLE', `cannot read audit file: ${(err as Error).message}`, { cause: err });
  } finally {
    await handle.close();
  }
}
