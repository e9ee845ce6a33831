/** Helpers for the replica tests: several keyhold servers on one PostgreSQL and one SoftHSM token. */
import { sleep } from './processes.js';

/** Resolves once `check` is true; fails naming `what` after `timeoutMs`. */
export async function pollUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
