/**
 * Lockout with back-off after failed logins. After `threshold` consecutive failures, the account
 * (or address) is locked for `baseSeconds`, and each further failure after a lock has passed
 * doubles the lock, up to `maxSeconds`. A success resets it. While locked, an attempt is refused
 * before its password is even hashed, and does not count (so a lock cannot be lengthened by
 * hammering it, only by failing again once it has passed).
 *
 * The rule is these pure functions; the account's state is in its barrier record (shared by every
 * replica, kept across restarts: store.ts), an address's state in memory (AddressLockout below).
 */
import { KeyholdError } from '../errors.js';

export interface LockoutSettings {
  threshold: number;
  baseSeconds: number;
  maxSeconds: number;
}

export const DEFAULT_ACCOUNT_LOCKOUT: Readonly<LockoutSettings> = { threshold: 5, baseSeconds: 30, maxSeconds: 900 };
/** Higher: several people can share an address (a NAT, a jump host). */
export const DEFAULT_ADDRESS_LOCKOUT: Readonly<LockoutSettings> = { threshold: 20, baseSeconds: 30, maxSeconds: 900 };

export interface FailureState {
  /** Consecutive failures since the last success. */
  failures: number;
  /** ms since the epoch; absent or past when not locked. */
  lockedUntil?: number;
}

/** How long a lock lasts after the `failures`-th consecutive failure (0: not locked). */
export function lockSeconds(failures: number, s: LockoutSettings): number {
  if (failures < s.threshold) return 0;
  const doublings = Math.min(failures - s.threshold, 30);
  return Math.min(s.maxSeconds, s.baseSeconds * 2 ** doublings);
}

/** The state after one more failure at `now`. */
export function afterFailure(state: FailureState | undefined, s: LockoutSettings, now: number): FailureState {
  const failures = (state?.failures ?? 0) + 1;
  const seconds = lockSeconds(failures, s);
  return seconds > 0 ? { failures, lockedUntil: now + seconds * 1000 } : { failures };
}

/** Seconds left of a lock at `now`, or 0. */
export function lockedFor(state: FailureState | undefined, now: number): number {
  const until = state?.lockedUntil;
  return until !== undefined && until > now ? Math.ceil((until - now) / 1000) : 0;
}

export function accountLocked(seconds: number): KeyholdError {
  return new KeyholdError('ERR_ACCOUNT_LOCKED', `too many failed attempts; this account is locked for ${seconds} s`, { details: { retryAfterSeconds: seconds } });
}

export function addressLocked(seconds: number): KeyholdError {
  return new KeyholdError('ERR_ADDRESS_LOCKED', `too many failed logins from this address; retry in ${seconds} s`, { details: { retryAfterSeconds: seconds } });
}

/**
 * Failures per key (a client address, or a username that has no account) in this process's
 * memory, bounded: beyond `maxKeys` the entries without a running lock are dropped first. Per
 * process, so with several replicas behind a balancer an address gets threshold × replicas tries
 * before each has locked it; the per-account lock, in the barrier, is the one that holds fleet-wide.
 */
export class MemoryLockout {
  private readonly states = new Map<string, FailureState>();

  constructor(private readonly settings: LockoutSettings, private readonly maxKeys = 10_000) {}

  /** Seconds the key is locked for now (0: not locked). */
  lockedFor(key: string, now = Date.now()): number {
    return lockedFor(this.states.get(key), now);
  }

  failed(key: string, now = Date.now()): FailureState {
    const next = afterFailure(this.states.get(key), this.settings, now);
    this.states.delete(key); // re-inserted last: the map's order is least recently failed first
    if (this.states.size >= this.maxKeys) this.evict(now);
    this.states.set(key, next);
    return next;
  }

  succeeded(key: string): void {
    this.states.delete(key);
  }

  private evict(now: number): void {
    for (const [key, state] of this.states) {
      if (lockedFor(state, now) === 0) this.states.delete(key);
      if (this.states.size < this.maxKeys * 0.9) return;
    }
    // Every entry is locked: drop the oldest rather than grow without bound.
    const oldest = this.states.keys().next();
    if (!oldest.done) this.states.delete(oldest.value);
  }
}
