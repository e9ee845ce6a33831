/** Waiting for something that happens on its own time (a process, a watch, a background task). */

export interface PollOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between two checks (default 100 ms). */
  intervalMs?: number;
  /** More to say when it times out (a process's output, the last status seen). */
  detail?: () => string;
}

/**
 * Calls `check` until it returns something other than false, undefined or null, and returns that.
 * Checks once more after the deadline, then throws naming `what`. An error thrown by `check`
 * propagates at once: a check that may fail while it waits catches its own errors.
 */
export async function pollUntil<T>(what: string, check: () => T | false | undefined | null | Promise<T | false | undefined | null>, options: PollOptions = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 100, detail } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const late = Date.now() > deadline;
    const value = await check();
    if (value !== false && value !== undefined && value !== null) return value;
    if (late) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${detail ? `:\n${detail()}` : ''}`);
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}
