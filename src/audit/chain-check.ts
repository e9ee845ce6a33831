/**
 * The rules a sequence of audit lines must follow, fed one line at a time (verify.ts reads the
 * files). Used both offline (`keyhold audit verify`) and by the server at start, so both judge a
 * log the same way: hash chain, canonical form, and, with a public key, that the chain starts with
 * its chain-start entry and that every checkpoint is a valid HSM signature over a head that is
 * really in the chain. An anchor (the latest checkpoint kept elsewhere) detects a cut tail.
 */
import type { KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import { checkpointShapeProblem, checkpointSignatureValid, keyFingerprint, type CheckpointData } from './checkpoint.js';
import { entryHash, entryShapeProblem, GENESIS_HASH, type SealedAnyAuditEntry, type SystemEntry } from './entry.js';

/** A checkpoint known from outside the log: the barrier's copy, or an exported one. */
export interface ChainAnchor {
  chain?: string;
  headSeq: number;
  headHash: string;
  entrySeq?: number;
  entryHash?: string;
}

export interface ChainCheckOptions {
  /** Check every checkpoint's signature with this key, and require a chain-start entry and a checkpoint. */
  publicKey?: KeyObject;
  /** The chain id the log must carry (the barrier's). */
  chain?: string;
  anchor?: ChainAnchor;
}

export interface ChainFailure {
  reason: string;
  /** The log ends before what the anchor says was written. */
  truncated?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class ChainVerifier {
  entries = 0;
  lastHash = GENESIS_HASH;
  chainId: string | undefined;
  checkpoints = 0;
  lastCheckpoint: (CheckpointData & { entrySeq: number; entryHash: string }) | undefined;
  readonly #publicKey: KeyObject | undefined;
  readonly #fingerprint: string | undefined;
  readonly #options: ChainCheckOptions;
  /** Hashes of the entries a later checkpoint may still sign (since the last verified one's head). */
  readonly #hashes = new Map<number, string>();

  constructor(options: ChainCheckOptions = {}) {
    this.#options = options;
    this.#publicKey = options.publicKey;
    this.#fingerprint = options.publicKey === undefined ? undefined : keyFingerprint(options.publicKey);
  }

  /** Checks the next line; on success the verifier moves past it and returns undefined. */
  check(bytes: Buffer): string | undefined {
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
    const entry = parsed as SealedAnyAuditEntry;
    // Byte equality with the canonical form rules out edits that parse to the same value.
    if (canonicalJson(entry) !== text) return 'not in canonical form';
    if (entryHash(entry) !== entry.hash) return 'hash does not match the entry content';
    const expectedSeq = this.entries + 1;
    if (entry.seq !== expectedSeq) return `seq is ${entry.seq}, expected ${expectedSeq}`;
    if (entry.prev !== this.lastHash) return 'prev does not match the hash of the previous entry';
    const semantic = this.#semantics(entry);
    if (semantic !== undefined) return semantic;
    const anchor = this.#options.anchor;
    if (anchor !== undefined) {
      // Caught here, at the anchor, but the edit can be anywhere after the last head a checkpoint in the log signed: say so.
      const from = (this.lastCheckpoint?.headSeq ?? 0) + 1;
      if (entry.seq === anchor.headSeq && entry.hash !== anchor.headHash) return `differs from the entry the latest checkpoint signed (seq ${anchor.headSeq}): the log was rewritten between seq ${from} and ${entry.seq}`;
      if (entry.seq === anchor.entrySeq && entry.hash !== anchor.entryHash) return `differs from the latest checkpoint entry (seq ${anchor.entrySeq}): the log was rewritten between seq ${from} and ${entry.seq}`;
    }
    this.entries = entry.seq;
    this.lastHash = entry.hash;
    this.#hashes.set(entry.seq, entry.hash);
    return undefined;
  }

  /** Checks made once the whole log was read. */
  finish(): ChainFailure | undefined {
    const anchor = this.#options.anchor;
    if (anchor !== undefined) {
      const end = Math.max(anchor.headSeq, anchor.entrySeq ?? 0);
      if (this.entries < end) return { reason: `log ends at seq ${this.entries} but the latest checkpoint covers seq ${end} (truncated)`, truncated: true };
      if (anchor.chain !== undefined && this.chainId !== undefined && anchor.chain !== this.chainId) {
        return { reason: `this log is chain ${this.chainId}, but the latest checkpoint is of chain ${anchor.chain} (another log)` };
      }
    }
    if (this.#publicKey !== undefined && this.entries > 0 && this.checkpoints === 0) {
      return { reason: `no valid checkpoint covers the chain: ${this.entries} entries, none signed` };
    }
    return undefined;
  }

  /** Entries after the last checkpoint's head: chained, but not (yet) signed. */
  get unsignedEntries(): number {
    return this.entries - (this.lastCheckpoint?.headSeq ?? 0);
  }

  #semantics(entry: SealedAnyAuditEntry): string | undefined {
    const strict = this.#publicKey !== undefined || this.#options.chain !== undefined;
    if (entry.seq === 1 && strict && entry.type !== 'chain-start') return 'the first entry is not a chain-start entry';
    if (entry.type === 'chain-start') return this.#chainStart(entry);
    if (entry.type === 'checkpoint') return this.#checkpoint(entry);
    return undefined;
  }

  #chainStart(entry: SystemEntry & { hash: string }): string | undefined {
    if (entry.seq !== 1) return 'a chain-start entry after the first entry';
    const chain = entry.data['chain'];
    if (typeof chain !== 'string' || !/^[0-9a-f]{32}$/.test(chain)) return 'chain-start has no valid chain id';
    const expected = this.#options.chain ?? this.#options.anchor?.chain;
    if (expected !== undefined && chain !== expected) return `this log is chain ${chain}, expected chain ${expected} (another log)`;
    this.chainId = chain;
    return undefined;
  }

  #checkpoint(entry: SystemEntry & { hash: string }): string | undefined {
    const problem = checkpointShapeProblem(entry.data);
    if (problem !== undefined) return problem;
    const data = entry.data as unknown as CheckpointData;
    if (this.chainId !== undefined && data.chain !== this.chainId) return `checkpoint names chain ${data.chain}, but this log is chain ${this.chainId}`;
    if (data.headSeq >= entry.seq) return `checkpoint signs seq ${data.headSeq}, which is not before it: entries were removed or rewritten`;
    if (this.#publicKey !== undefined) {
      if (data.key !== this.#fingerprint) return `checkpoint was signed by another key (fingerprint ${data.key}, expected ${this.#fingerprint})`;
      if (!checkpointSignatureValid(data, this.#publicKey)) return 'checkpoint signature is invalid';
    }
    // The writer signs a later head each time, so a checkpoint that signs the previous one's head
    // (or an earlier one) is a genuine signature in the wrong place: a replay, not a checkpoint.
    const previousHead = this.lastCheckpoint?.headSeq ?? 0;
    if (data.headSeq <= previousHead) return `checkpoint signs seq ${data.headSeq}, not after seq ${previousHead} that the checkpoint at seq ${this.lastCheckpoint?.entrySeq} signed: a replayed checkpoint`;
    const signed = this.#hashes.get(data.headSeq);
    if (signed === undefined) return `checkpoint signs seq ${data.headSeq}, which is before the previous checkpoint's head`;
    if (signed !== data.headHash) {
      const from = (this.lastCheckpoint?.headSeq ?? 0) + 1;
      return `checkpoint signs a different seq ${data.headSeq} than the log holds: entries ${from}..${data.headSeq} were rewritten`;
    }
    for (const seq of this.#hashes.keys()) {
      if (seq >= data.headSeq) break;
      this.#hashes.delete(seq);
    }
    this.checkpoints += 1;
    this.lastCheckpoint = { ...data, entrySeq: entry.seq, entryHash: entry.hash };
    return undefined;
  }
}
