import { KeyholdError } from '../errors.js';

/**
 * At most `concurrency` password hashes at once, and at most `maxQueued` waiting behind them.
 *
 * Each scrypt hash holds 32 MiB (password-hash.ts) and a libuv thread (shared with file and other
 * crypto work) for a quarter of a second: unbounded, a flood of logins would take memory and the
 * thread pool from everything else. Past the queue, a login is refused at once (ERR_LOGIN_BUSY,
 * 503 with Retry-After) instead of waiting for minutes.
 */
export class HashLimiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly concurrency: number, readonly maxQueued: number) {
    if (!(Number.isSafeInteger(concurrency) && concurrency >= 1)) throw new KeyholdError('ERR_CONFIG', 'hash concurrency must be a whole number ≥ 1');
  }

  /** Runs `work` when a slot is free; ERR_LOGIN_BUSY when the queue is full. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued) throw new KeyholdError('ERR_LOGIN_BUSY', 'too many logins at once; retry in a second');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter (running stays the same), or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** For tests and metrics: hashes running now, and waiting. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }
}
