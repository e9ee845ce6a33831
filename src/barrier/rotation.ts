/**
 * Root-key rotation (issue 11): one atomic storage write switches every future write to a new
 * root key; a background job on the leader (rewrite-job.ts) then rewrites the records still
 * under older generations, resumably, and finally drops their keys from the keyring. Design:
 * docs/design-notes.md, "Root key rotation".
 */
import { randomBytes } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import type { Storage } from '../storage/types.js';
import { DATA_PREFIX, type Barrier } from './barrier.js';
import { KEYRING_PATH, keyringAfterRotation, previousKeys, readKeyring, usePreviousKeysOf } from './keyring.js';
import { MAX_GENERATION } from './record.js';
import { RewriteJob } from './rewrite-job.js';
import { DEFAULT_ROTATION_SETTINGS, ROTATION_PATH, rotationStatus, type RotationProgress, type RotationSettings, type RotationStatus } from './rotation-progress.js';
import { MOUNTS } from './mounts.js';
import { recoveryFieldsFor } from './recovery.js';
import { protectRoot, readSealRecord, rootKeyGeneration, SEAL_RECORD_KEY, unsealRecord } from './seal.js';

export { ROTATION_PATH, type RotationProgress, type RotationSettings, type RotationStatus } from './rotation-progress.js';

/** Test-only fault (kill -9 between the rotation's atomic write and anything after it); unset in production. */
const CRASH_AFTER_ROTATION_WRITE = process.env.KEYHOLD_TEST_FAULT === 'crash-after-root-rotation-write';

export interface RootRotationOptions {
  storage: Storage;
  barrier: Barrier;
  hsm: Hsm;
  settings?: Partial<RotationSettings>;
  warn: (message: string) => void;
}

export class RootRotation {
  readonly settings: RotationSettings;
  /** The rewrite, a background job for the leader (src/ha/core-jobs.ts). */
  readonly job: RewriteJob;
  readonly #storage: Storage;
  readonly #barrier: Barrier;
  readonly #hsm: Hsm;
  readonly #warn: (message: string) => void;
  #unwatch: Array<() => void> = [];
  /** A refresh that failed (the HSM was down) is retried until it succeeds: no later event may come. */
  #retry: NodeJS.Timeout | undefined;
  #failing = false;
  #closed = false;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;

  constructor(options: RootRotationOptions) {
    this.settings = { ...DEFAULT_ROTATION_SETTINGS, ...options.settings };
    this.#storage = options.storage;
    this.#barrier = options.barrier;
    this.#hsm = options.hsm;
    this.#warn = options.warn;
    this.job = new RewriteJob({ storage: this.#storage, barrier: this.#barrier, settings: this.settings, warn: this.#warn, refresh: () => this.refresh() });
  }

  /** Whether a rewrite is under way, as last known here (health, metrics; `status()` reads storage). */
  get inProgress(): boolean {
    return this.job.inProgress;
  }

  /** Records this process rewrote (metrics). */
  get rewrittenTotal(): number {
    return this.job.rewrittenTotal;
  }

  /** The rotation state as stored now. */
  async status(): Promise<RotationStatus> {
    const p = (await this.#barrier.read<RotationProgress>(ROTATION_PATH)).value;
    this.job.inProgress = p?.rewriting === true;
    return rotationStatus(p, this.#barrier.generation);
  }

  /**
   * Rotates the root key: a fresh random key of the next generation becomes current in one
   * atomic write of the seal record (compare-and-set on its bytes), the keyring (the old key
   * added, sealed under the new generation) and the rewrite's progress record. Refused while an
   * earlier rotation is still rewriting: chaining would keep three generations alive at once for
   * no gain, and the operator can simply retry when `rewriting` is false.
   */
  async rotate(): Promise<RotationStatus> {
    const stored = await readSealRecord(this.#storage);
    if (!stored) throw new KeyholdError('ERR_NOT_INITIALIZED', 'this store has not been initialised');
    const { record: sealed, raw: sealRaw } = stored;
    const generation = rootKeyGeneration(sealed);
    // Another replica rotated and this one has not heard yet: learn it first, then decide.
    if (generation !== this.#barrier.generation) await this.refresh();
    if (generation !== this.#barrier.generation) throw new KeyholdError('ERR_CONFLICT', 'the root key changed meanwhile; retry');
    const progressRead = await this.#barrier.read<RotationProgress>(ROTATION_PATH);
    if (progressRead.value?.rewriting) {
      throw new KeyholdError('ERR_ROTATION_IN_PROGRESS', `records are still being rewritten to root-key generation ${progressRead.value.generation}; rotate again once that has finished`);
    }
    if (generation >= MAX_GENERATION) throw new KeyholdError('ERR_CONFLICT', 'the root-key generation cannot go higher');
    const keyringRead = await readKeyring(this.#barrier);
    const next = generation + 1;
    const held = this.#barrier.exportRootKeys();
    const current = held.get(generation) as Buffer;
    const newRoot = randomBytes(32);
    let protectedRoot: Awaited<ReturnType<typeof protectRoot>> | undefined;
    let committed = false;
    try {
      const keyring = keyringAfterRotation(keyringRead.value, generation, current);
      protectedRoot = await protectRoot(this.#hsm, newRoot, next, sealed);
      // A store with recovery shares: the new root key wrapped under the recovery key as well (the
      // recovery key is in the barrier; protectRoot never carries the old root's copy over).
      const recovery = await recoveryFieldsFor(this.#barrier.view(MOUNTS.seal), newRoot, next);
      if (recovery) {
        if (protectedRoot.record.version !== 2) throw new KeyholdError('ERR_INTERNAL', 'a seal record with recovery shares must be version 2');
        protectedRoot.record.recovery = recovery;
      }
      const now = new Date().toISOString();
      const progress: RotationProgress = {
        version: 1, generation: next, rewriting: true, pass: 1, cursor: '', passTotal: 0, passScanned: 0, passRewritten: 0, scanned: 0, rewritten: 0, startedAt: now,
      };
      // Sealed under the new key, which becomes current only with this commit.
      const as = { generation: next, rootKey: newRoot };
      const sealedWrites = [this.#barrier.sealedPut(KEYRING_PATH, keyring, as), this.#barrier.sealedPut(ROTATION_PATH, progress, as)];
      committed = await this.#storage.atomic(
        [{ key: SEAL_RECORD_KEY, value: sealRaw }, { key: DATA_PREFIX + KEYRING_PATH, value: keyringRead.raw }, { key: DATA_PREFIX + ROTATION_PATH, value: progressRead.raw }],
        [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(protectedRoot.record)) }, ...sealedWrites],
      );
      if (CRASH_AFTER_ROTATION_WRITE && committed) process.kill(process.pid, 'SIGKILL');
      if (!committed) throw new KeyholdError('ERR_CONFLICT', 'another rotation or writer changed the seal first; retry');
      // Data-object mode: the old root key's object stays in the token, as the old wrapped root key
      // stays in every backup of a store that keeps it in storage: a backup taken before this rotation
      // names it and must still restore. It is ciphertext only the seal key opens; remove it
      // (pkcs11-tool --delete-object) once no backup needs it.
      const older = previousKeys(keyring);
      this.#barrier.useRootKey(next, newRoot, older);
      zeroize(...older.values());
      this.job.inProgress = true;
      this.job.kick();
      return rotationStatus(progress, next);
    } finally {
      if (!committed) await protectedRoot?.discard().catch((err: unknown) => this.#warn(`removing the unused seal objects failed: ${(err as Error).message}`));
      zeroize(newRoot, ...held.values());
    }
  }

  /**
   * Brings this replica's barrier up to the seal record and keyring in storage (another replica
   * rotated, or the rewrite dropped old keys). Serialised: concurrent calls run it once more.
   */
  refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      do {
        this.#refreshAgain = false;
        await this.#refreshOnce();
      } while (this.#refreshAgain);
    })().finally(() => { this.#refreshing = null; });
    return this.#refreshing;
  }

  async #refreshOnce(): Promise<void> {
    if (this.#barrier.sealed) return;
    const stored = await readSealRecord(this.#storage);
    if (!stored) return;
    const generation = rootKeyGeneration(stored.record);
    if (generation < this.#barrier.generation) return;
    if (generation > this.#barrier.generation) {
      // Another replica rotated: the HSM unwraps the new key. The keyring is sealed under it:
      // switch with every key held so far, read the keyring, then settle on what it lists.
      // Until then (the HSM may be down) this replica must not write under the old key.
      this.#barrier.learnNewerGeneration(generation);
      const rootKey = (await unsealRecord(this.#hsm, stored.record)).rootKey;
      try {
        if (this.#barrier.sealed || this.#barrier.generation >= generation) return;
        const held = this.#barrier.exportRootKeys();
        this.#barrier.useRootKey(generation, rootKey, held);
        zeroize(...held.values());
      } finally {
        zeroize(rootKey);
      }
    }
    const keyring = await readKeyring(this.#barrier);
    if (this.#barrier.generation === generation) usePreviousKeysOf(this.#barrier, keyring.value);
    await this.#readProgress();
  }

  /** Follows the stored progress (a follower learns that a rewrite started or ended); the leader resumes it. */
  async #readProgress(): Promise<void> {
    const progress = (await this.#barrier.read<RotationProgress>(ROTATION_PATH)).value;
    this.job.inProgress = progress?.rewriting === true;
    if (this.job.inProgress) this.job.kick();
  }

  /**
   * Every replica follows the seal record and the keyring through the change feed (PostgreSQL):
   * a rotation elsewhere switches this barrier to the new key, so its writes stop using the old one.
   */
  follow(): void {
    const feed = this.#storage.changes;
    if (!feed) return;
    const keyring = [SEAL_RECORD_KEY, DATA_PREFIX + KEYRING_PATH];
    const progress = DATA_PREFIX + ROTATION_PATH;
    this.#unwatch.push(feed.onChange((keys) => {
      if (keys === 'all' || keys.some((k) => keyring.includes(k))) this.#refreshFollowing();
      // Saved after every batch: a cheap read, not a refresh (which may ask the HSM).
      else if (keys.includes(progress)) this.#readProgress().catch((err: unknown) => this.#warn(`reading the rotation progress failed: ${(err as Error).message}`));
    }));
  }

  /**
   * A refresh on a change event. If it fails (typically: the HSM is unavailable, so the new root
   * key cannot be unwrapped), it is retried every second: the event that caused it will not come
   * again, and without the retry this replica would stay on the old key after the HSM is back.
   */
  #refreshFollowing(): void {
    if (this.#retry) { clearTimeout(this.#retry); this.#retry = undefined; }
    this.refresh().then(() => { this.#failing = false; }, (err: unknown) => {
      if (!this.#failing) this.#warn(`learning the current root key failed (retrying every second): ${(err as Error).message}`);
      this.#failing = true;
      if (this.#closed || this.#retry) return;
      this.#retry = setTimeout(() => { this.#retry = undefined; this.#refreshFollowing(); }, 1000);
      this.#retry.unref();
    });
  }

  /** Stops following and the job; `job.idle()` resolves once a batch in flight is done. */
  close(): void {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    for (const unwatch of this.#unwatch.splice(0)) unwatch();
    this.job.stop();
  }
}
