import { createSecretKey, type KeyObject } from 'node:crypto';
import { aesGcmOpen, aesGcmSeal } from '../crypto/aead.js';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError, isKeyholdError } from '../errors.js';
import type { Storage, StorageChangeFeed, StorageCheck, StorageWrite } from '../storage/types.js';
import { assertLogicalPath } from './paths.js';

const RECORD_VERSION = 1;
/** Barrier records live under this storage prefix; the seal record lives beside it, outside. */
const DATA_PREFIX = 'data/';
const MAX_CAS_ATTEMPTS = 64;

function aadFor(path: string): Buffer {
  return Buffer.from(`keyhold-barrier-v1\0${path}`, 'utf8');
}

/** A read that remembers the exact stored bytes, so a later write can be made conditional on them. */
export interface BarrierRead<T> {
  path: string;
  value: T | null;
  raw: Buffer | null;
}

export type BarrierWrite = { path: string; value: unknown } | { path: string; delete: true };

/**
 * The encrypting view over untrusted storage. Every record is AES-256-GCM under the root key with
 * its logical path as AAD, so a record copied to another path fails to decrypt. Storage never
 * sees a plaintext byte.
 */
export class Barrier {
  private key: KeyObject | null;

  constructor(private readonly storage: Storage, rootKey: Buffer) {
    if (rootKey.length !== 32) throw new KeyholdError('ERR_INTERNAL', 'barrier root key must be 256 bits');
    this.key = createSecretKey(rootKey);
  }

  /** The store's change feed (only a store shared between replicas has one). */
  get changes(): StorageChangeFeed | undefined {
    return this.storage.changes;
  }

  get sealed(): boolean {
    return this.key === null;
  }

  async getJson<T>(path: string): Promise<T | null> {
    return (await this.read<T>(path)).value;
  }

  async read<T>(path: string): Promise<BarrierRead<T>> {
    assertLogicalPath(path);
    this.requireKey();
    const raw = await this.storage.get(DATA_PREFIX + path);
    if (!raw) return { path, value: null, raw: null };
    const plaintext = this.open(path, raw);
    try {
      return { path, value: JSON.parse(plaintext.toString('utf8')) as T, raw };
    } finally {
      zeroize(plaintext);
    }
  }

  async putJson(path: string, value: unknown): Promise<void> {
    assertLogicalPath(path);
    await this.storage.put(DATA_PREFIX + path, this.sealJson(path, value));
  }

  async delete(path: string): Promise<void> {
    assertLogicalPath(path);
    this.requireKey();
    await this.storage.delete(DATA_PREFIX + path);
  }

  /** Logical paths under `prefix` (which is itself a logical path prefix, possibly ending in '/'). */
  async list(prefix: string): Promise<string[]> {
    this.requireKey();
    const keys = await this.storage.list(DATA_PREFIX + prefix);
    return keys.map((key) => key.slice(DATA_PREFIX.length));
  }

  /**
   * Applies `writes` only if every record in `reads` is still exactly as it was read. Returns
   * false when another writer got there first.
   */
  async commit(reads: ReadonlyArray<BarrierRead<unknown>>, writes: readonly BarrierWrite[]): Promise<boolean> {
    this.requireKey();
    const checks: StorageCheck[] = reads.map((r) => ({ key: DATA_PREFIX + r.path, value: r.raw }));
    const ops: StorageWrite[] = writes.map((w) => {
      assertLogicalPath(w.path);
      return 'delete' in w ? { op: 'delete', key: DATA_PREFIX + w.path } : { op: 'put', key: DATA_PREFIX + w.path, value: this.sealJson(w.path, w.value) };
    });
    return this.storage.atomic(checks, ops);
  }

  /**
   * Read-modify-write with optimistic concurrency: `fn` sees the current value and returns the
   * writes to make (or throws); retried when a concurrent writer changed the record.
   */
  async update<T, R>(path: string, fn: (current: T | null) => { writes: BarrierWrite[]; result: R }): Promise<R> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.read<T>(path);
      const { writes, result } = fn(current.value);
      if (await this.commit([current], writes)) return result;
    }
    throw new KeyholdError('ERR_CONFLICT', `too many concurrent writers on ${path}; retry`);
  }

  /** Drops the root key from memory. */
  seal(): void {
    this.key = null;
  }

  private sealJson(path: string, value: unknown): Buffer {
    const plaintext = Buffer.from(JSON.stringify(value), 'utf8');
    try {
      return Buffer.concat([Buffer.of(RECORD_VERSION), aesGcmSeal(this.requireKey(), plaintext, aadFor(path))]);
    } finally {
      zeroize(plaintext);
    }
  }

  private open(path: string, raw: Buffer): Buffer {
    if (raw[0] !== RECORD_VERSION) throw new KeyholdError('ERR_BARRIER_INTEGRITY', `record ${path} has an unknown format`);
    try {
      return aesGcmOpen(this.requireKey(), raw.subarray(1), aadFor(path));
    } catch (err) {
      if (isKeyholdError(err, 'ERR_CIPHERTEXT_INVALID')) {
        throw new KeyholdError('ERR_BARRIER_INTEGRITY', `record ${path} failed authentication: storage was altered`);
      }
      throw err;
    }
  }

  private requireKey(): KeyObject {
    if (!this.key) throw new KeyholdError('ERR_SEALED', 'keyhold is sealed');
    return this.key;
  }
}
