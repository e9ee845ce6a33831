/**
 * Root-key rotation (issue 11): one atomic storage write switches every future write to a new
 * root key; a background job on the leader then rewrites the records still under older
 * generations, resumably, and finally drops their keys from the keyring. Design:
 * docs/design-notes.md, "Root key rotation".
 */
import { randomBytes } from 'node:crypto';
import { zeroize } from '../crypto/zero.js';
import { KeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import type { Storage, StorageWrite } from '../storage/types.js';
import { DATA_PREFIX, type Barrier, type BarrierRead } from './barrier.js';
import { KEYRING_PATH, keyringAfterRotation, keyringWithout, previousKeys, readKeyring } from './keyring.js';
import { MAX_GENERATION } from './record.js';
import { protectRoot, rootKeyGeneration, SEAL_RECORD_KEY, unseal, type SealRecord } from './seal.js';

export const ROTATION_PATH = 'sys/root-rotation';

/** The rewrite's state, in the barrier beside the keyring; written in the rotation's own atomic write, then after every batch. */
export interface RotationProgress {
  version: 1;
  /** The generation records are being rewritten to. */
  generation: number;
  rewriting: boolean;
  /** 1: the first pass; 2 and up: final passes, repeated until one rewrites nothing. */
  pass: number;
  /** The last storage key done in this pass ('' = none yet): a restart resumes after it. */
  cursor: string;
  /** Records in this pass's listing, and how many of them were scanned so far. */
  passTotal: number;
  passScanned: number;
  passRewritten: number;
  scanned: number;
  rewritten: number;
  startedAt: string;
  finishedAt?: string;
}

/** Wire shape of the rotation state (GET /v1/sys/seal/rotation). */
export interface RotationStatus {
  generation: number;
  rewriting: boolean;
  scanned: number;
  rewritten: number;
  remaining_estimate: number;
  pass: number;
  started_at?: string;
  finished_at?: string;
}

export interface RotationSettings {
  /** Records per batch; the cursor is saved after each. */
  batchSize: number;
  /** Pause between batches, so foreground requests keep their latency. */
  pauseMs: number;
  /**
   * Shared storage (PostgreSQL): the final pass starts at least this long after the rotation, so
   * every replica has learnt the new root key from the change feed (see the design notes).
   */
  settleMs: number;
  /** How often the leader checks for a rewrite to do (besides being told at once). */
  intervalMs: number;
}

export const DEFAULT_ROTATION_SETTINGS: RotationSettings = { batchSize: 200, pauseMs: 25, settleMs: 5_000, intervalMs: 10_000 };

/**
 * Hook for the recovery key (recovery helper): the storage writes that re-wrap the new root key
 * under the recovery key, made in the rotation's atomic write (with the checks they need as
 * writes' preconditions is the hook's business: it returns [] when the store has no recovery record).
 */
export type RecoveryRewrap = (rootKey: Buffer, generation: number) => Promise<{ checks: Array<{ key: string; value: Buffer | null }>; writes: StorageWrite[] }>;

/** Test-only fault (kill -9 between the rotation's atomic write and anything after it); unset in production. */
const CRASH_AFTER_ROTATION_WRITE = process.env.KEYHOLD_TEST_FAULT === 'crash-after-root-rotation-write';


function toStatus(p: RotationProgress | null, generation: number): RotationStatus {
  if (!p) return { generation, rewriting: false, scanned: 0, rewritten: 0, remaining_estimate: 0, pass: 0 };
  return {
    generation: p.generation, rewriting: p.rewriting, scanned: p.scanned, rewritten: p.rewritten,
    remaining_estimate: p.rewriting ? Math.max(0, p.passTotal - p.passScanned) : 0, pass: p.pass,
    started_at: p.startedAt, ...(p.finishedAt ? { finished_at: p.finishedAt } : {}),
  };
}

export interface RootRotationOptions {
  storage: Storage;
  barrier: Barrier;
  hsm: Hsm;
  settings?: Partial<RotationSettings>;
  warn: (message: string) => void;
  /** Set by the lead when the recovery helper's branch is merged (see RecoveryRewrap). */
  rewrapRecovery?: RecoveryRewrap;
}

export class RootRotation {
  readonly settings: RotationSettings;
  /** Records this process rewrote (metrics). */
  rewrittenTotal = 0;
  /** Whether a rewrite is under way, as last read or written here (health and metrics; GET reads storage). */
  inProgress = false;
  readonly #storage: Storage;
  readonly #barrier: Barrier;
  readonly #hsm: Hsm;
  readonly #warn: (message: string) => void;
  readonly #rewrapRecovery: RecoveryRewrap | undefined;
  #started = false;
  #running: Promise<void> | null = null;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: Array<() => void> = [];
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  /** Ends the current pause early (stop: shutdown must not wait out a pause or the settle time). */
  #wake: (() => void) | undefined;
  readonly name = 'root-key-rewrite';

  constructor(options: RootRotationOptions) {
    this.settings = { ...DEFAULT_ROTATION_SETTINGS, ...options.settings };
    this.#storage = options.storage;
    this.#barrier = options.barrier;
    this.#hsm = options.hsm;
    this.#warn = options.warn;
    this.#rewrapRecovery = options.rewrapRecovery;
  }

  /** The rotation state as stored now. */
  async status(): Promise<RotationStatus> {
    const p = (await this.#barrier.read<RotationProgress>(ROTATION_PATH)).value;
    this.inProgress = p?.rewriting === true;
    return toStatus(p, this.#barrier.generation);
  }

  /**
   * Rotates the root key: a fresh random key of the next generation becomes current in one
   * atomic write of the seal record (compare-and-set on its bytes), the keyring (the old key
   * added, sealed under the new generation) and the rewrite's progress record. Refused while an
   * earlier rotation is still rewriting: chaining would keep three generations alive at once for
   * no gain, and the operator can simply retry when `rewriting` is false.
   */
  async rotate(): Promise<RotationStatus> {
    const sealRaw = await this.#storage.get(SEAL_RECORD_KEY);
    if (!sealRaw) throw new KeyholdError('ERR_NOT_INITIALIZED', 'this store has not been initialised');
    const sealed = JSON.parse(sealRaw.toString('utf8')) as SealRecord;
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
      const recovery = this.#rewrapRecovery ? await this.#rewrapRecovery(newRoot, next) : { checks: [], writes: [] };
      const now = new Date().toISOString();
      const progress: RotationProgress = {
        version: 1, generation: next, rewriting: true, pass: 1, cursor: '', passTotal: 0, passScanned: 0, passRewritten: 0, scanned: 0, rewritten: 0, startedAt: now,
      };
      // Sealed under the new key, which becomes current only with this commit.
      const as = { generation: next, rootKey: newRoot };
      const sealedWrites = [this.#barrier.sealedPut(KEYRING_PATH, keyring, as), this.#barrier.sealedPut(ROTATION_PATH, progress, as)];
      committed = await this.#storage.atomic(
        [{ key: SEAL_RECORD_KEY, value: sealRaw }, { key: DATA_PREFIX + KEYRING_PATH, value: keyringRead.raw }, { key: DATA_PREFIX + ROTATION_PATH, value: progressRead.raw }, ...recovery.checks],
        [{ op: 'put', key: SEAL_RECORD_KEY, value: Buffer.from(JSON.stringify(protectedRoot.record)) }, ...sealedWrites, ...recovery.writes],
      );
      if (CRASH_AFTER_ROTATION_WRITE && committed) process.kill(process.pid, 'SIGKILL');
      if (!committed) throw new KeyholdError('ERR_CONFLICT', 'another rotation or writer changed the seal first; retry');
      const older = previousKeys(keyring);
      this.#barrier.useRootKey(next, newRoot, older);
      zeroize(...older.values());
      this.inProgress = true;
      this.kick();
      return toStatus(progress, next);
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
    const sealRaw = await this.#storage.get(SEAL_RECORD_KEY);
    if (!sealRaw) return;
    const generation = rootKeyGeneration(JSON.parse(sealRaw.toString('utf8')) as SealRecord);
    if (generation < this.#barrier.generation) return;
    let rootKey: Buffer;
    if (generation > this.#barrier.generation) {
      // Another replica rotated: the HSM unwraps the new key. The keyring is sealed under it:
      // switch with every key held so far, read the keyring, then settle on what it lists.
      rootKey = (await unseal(this.#storage, this.#hsm)).rootKey;
      if (this.#barrier.sealed || this.#barrier.generation >= generation) return void zeroize(rootKey);
      const held = this.#barrier.exportRootKeys();
      this.#barrier.useRootKey(generation, rootKey, held);
      zeroize(...held.values());
    } else {
      const held = this.#barrier.exportRootKeys();
      rootKey = held.get(generation) as Buffer;
      held.delete(generation);
      zeroize(...held.values());
    }
    try {
      const keyring = await readKeyring(this.#barrier);
      const previous = previousKeys(keyring.value);
      if (this.#barrier.generation === generation) this.#barrier.useRootKey(generation, rootKey, previous);
      zeroize(...previous.values());
      await this.#readProgress();
    } finally {
      zeroize(rootKey);
    }
  }

  /** Follows the stored progress (a follower learns that a rewrite started or ended); the leader resumes it. */
  async #readProgress(): Promise<void> {
    const progress = (await this.#barrier.read<RotationProgress>(ROTATION_PATH)).value;
    this.inProgress = progress?.rewriting === true;
    if (this.inProgress) this.kick();
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
    const failed = (err: unknown) => this.#warn(`learning the current root key failed: ${(err as Error).message}`);
    this.#unwatch.push(feed.onChange((keys) => {
      if (keys === 'all' || keys.some((k) => keyring.includes(k))) this.refresh().catch(failed);
      // Saved after every batch: a cheap read, not a refresh (which may ask the HSM).
      else if (keys.includes(progress)) this.#readProgress().catch(failed);
    }));
  }

  close(): void {
    for (const unwatch of this.#unwatch.splice(0)) unwatch();
    this.stop();
  }

  // BackgroundJob (src/ha/jobs.ts): runs on the leader only.
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#timer = setInterval(() => this.kick(), this.settings.intervalMs);
    this.#timer.unref();
    this.kick();
  }

  stop(): void {
    this.#started = false;
    clearInterval(this.#timer);
    this.#wake?.();
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Runs the rewrite now if this replica leads and it is not already running. */
  kick(): void {
    if (!this.#started) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.rewrite();
      } while (this.#again && this.#started);
    })()
      .catch((err: unknown) => { if (this.#started) this.#warn(`rewriting records under the new root key: ${(err as Error).message}`); })
      .finally(() => { this.#running = null; });
  }

  /** Waits for a rewrite in flight (tests, shutdown). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /**
   * The rewrite, from the saved cursor: batches of records in key order, each re-sealed under the
   * current generation with a compare-and-set on the bytes read (a concurrent write wins and is
   * skipped: it is already under a current key); the cursor is saved after each batch. Then final
   * passes over everything until one rewrites nothing, and the old keys leave the keyring.
   */
  async rewrite(): Promise<void> {
    let read = await this.#barrier.read<RotationProgress>(ROTATION_PATH);
    let p = read.value;
    if (!p?.rewriting) {
      this.inProgress = false;
      return;
    }
    this.inProgress = true;
    if (p.generation > this.#barrier.generation) await this.refresh();
    if (p.generation !== this.#barrier.generation) return;
    const { batchSize, pauseMs, settleMs } = this.settings;
    while (this.#started && !this.#barrier.sealed) {
      // Every write of this process sealed under the old key has landed before a final pass lists.
      if (p.pass >= 2) await this.#barrier.writesDrained();
      if (p.pass >= 2 && this.#storage.changes) {
        // Replicas learn the new key through the feed; the final pass starts once they have had time to.
        const wait = Date.parse(p.startedAt) + settleMs - Date.now();
        if (wait > 0) await this.#pause(wait);
        if (!this.#started) return;
        await this.#storage.changes.sync();
      }
      const listed = await this.#storage.list(DATA_PREFIX);
      const keys = listed.filter((k) => k > DATA_PREFIX + p!.cursor || p!.cursor === '');
      if (p.cursor === '') p = { ...p, passTotal: listed.length, passScanned: 0, passRewritten: 0 };
      for (let i = 0; i < keys.length && this.#started; i += batchSize) {
        let scanned = 0;
        let rewritten = 0;
        for (const key of keys.slice(i, i + batchSize)) {
          scanned++;
          const raw = await this.#storage.get(key);
          if (!raw) continue;
          const outcome = await this.#barrier.reseal(key.slice(DATA_PREFIX.length), raw);
          if (outcome === 'newer') return void (await this.refresh());
          if (outcome === 'rewritten') rewritten++;
        }
        this.rewrittenTotal += rewritten;
        const last = keys[Math.min(i + batchSize, keys.length) - 1] as string;
        const next: RotationProgress = {
          ...p, cursor: last.slice(DATA_PREFIX.length), passScanned: p.passScanned + scanned, passRewritten: p.passRewritten + rewritten,
          scanned: p.scanned + scanned, rewritten: p.rewritten + rewritten,
        };
        if (!(await this.#save(read, next))) return;
        read = await this.#barrier.read<RotationProgress>(ROTATION_PATH);
        p = next;
        if (pauseMs > 0) await this.#pause(pauseMs);
      }
      if (!this.#started) return;
      if (p.pass === 1 || p.passRewritten > 0) {
        // Another pass from the start: catches writes sealed under the old key while the switch happened (see the design notes).
        const next: RotationProgress = { ...p, pass: p.pass + 1, cursor: '', passTotal: 0, passScanned: 0, passRewritten: 0 };
        if (!(await this.#save(read, next))) return;
        read = await this.#barrier.read<RotationProgress>(ROTATION_PATH);
        p = next;
        continue;
      }
      await this.#finish(read, p);
      return;
    }
  }

  async #save(read: BarrierRead<RotationProgress>, next: RotationProgress): Promise<boolean> {
    return this.#barrier.commit([read], [{ path: ROTATION_PATH, value: next }]);
  }

  /** No record names an older generation: drop their keys, in one write with the progress record (both compare-and-set). */
  async #finish(read: BarrierRead<RotationProgress>, p: RotationProgress): Promise<void> {
    const keyringRead = await readKeyring(this.#barrier);
    const done: RotationProgress = { ...p, rewriting: false, finishedAt: new Date().toISOString() };
    const writes = keyringRead.value ? [{ path: KEYRING_PATH, value: keyringWithout(keyringRead.value, p.generation) }] : [];
    if (!(await this.#barrier.commit([read, keyringRead], [...writes, { path: ROTATION_PATH, value: done }]))) return;
    this.inProgress = false;
    const current = this.#barrier.exportRootKeys().get(p.generation) as Buffer;
    this.#barrier.useRootKey(p.generation, current, new Map());
    zeroize(current);
  }
}
