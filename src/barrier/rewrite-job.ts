/**
 * The rewrite after a root-key rotation (src/barrier/rotation.ts), as a background job the leader
 * runs (src/ha/jobs.ts): re-seals every record still under an older generation, resumably, then
 * drops the older keys from the keyring. Design: docs/design-notes.md, "Root key rotation".
 */
import type { Storage } from '../storage/types.js';
import { DATA_PREFIX, type Barrier, type BarrierRead } from './barrier.js';
import { KEYRING_PATH, keyringWithout, readKeyring } from './keyring.js';
import { ROTATION_PATH, type RotationProgress, type RotationSettings } from './rotation-progress.js';

export interface RewriteJobOptions {
  storage: Storage;
  barrier: Barrier;
  settings: RotationSettings;
  warn: (message: string) => void;
  /** Brings the barrier up to the seal record and keyring in storage (a rotation made elsewhere). */
  refresh: () => Promise<void>;
}

export class RewriteJob {
  readonly name = 'root-key-rewrite';
  /** Records this process rewrote (metrics). */
  rewrittenTotal = 0;
  /** Whether a rewrite is under way, as last read or written here (health and metrics). */
  inProgress = false;
  readonly #storage: Storage;
  readonly #barrier: Barrier;
  readonly #settings: RotationSettings;
  readonly #warn: (message: string) => void;
  readonly #refresh: () => Promise<void>;
  #started = false;
  #running: Promise<void> | null = null;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  /** Ends the current pause early (stop: shutdown must not wait out a pause or the settle time). */
  #wake: (() => void) | undefined;

  constructor(options: RewriteJobOptions) {
    this.#storage = options.storage;
    this.#barrier = options.barrier;
    this.#settings = options.settings;
    this.#warn = options.warn;
    this.#refresh = options.refresh;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#timer = setInterval(() => this.kick(), this.#settings.intervalMs);
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
    if (p.generation > this.#barrier.generation) await this.#refresh();
    if (p.generation !== this.#barrier.generation) return;
    const { batchSize, pauseMs, settleMs } = this.#settings;
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
          if (outcome === 'newer') return void (await this.#refresh());
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
    if (this.#barrier.generation === p.generation) this.#barrier.usePreviousKeys(new Map());
  }
}
