import { KeyholdError } from '../errors.js';
import {
  failureKind, isFatalForReconnect, RECONNECT_FIRST_MS, RECONNECT_MAX_MS, TRANSPORT_FAILURES_TO_OPEN, unavailable,
} from './breaker.js';
import type { Hsm, HsmHealth, HsmMemberHealth, HsmMemberState } from './types.js';

/** One connection to one member; Pkcs11Hsm adds `forget` (drop a cached handle) and a synchronous uncached `probe`. */
export interface MemberConnection extends Hsm {
  forget?(label: string): void;
  probe?(): HsmHealth;
}

export interface MemberSpec {
  readonly name: string;
  /** Equal identities: the same member (setMembers keeps it); different: replaced. */
  readonly identity: string;
  /** Opens a fresh connection (module initialised, token found, logged in, sessions open). */
  open(): Promise<MemberConnection>;
  /** Called once the member is closed for good (removes its module copy). */
  dispose?(): void;
}

export interface MemberEvents {
  log?(message: string): void;
}

/**
 * A member of the pool: one connection plus its circuit breaker. Closed (`up`) it takes calls;
 * on "device gone" or several transport failures in a row it opens (`down`) at once, then
 * reconnects in the background (`probing` while an attempt runs): wait for its in-flight calls
 * (C_Finalize while a pkcs11js async call runs on a libuv thread can crash the process), close
 * the connection (C_Finalize), open a new one (C_Initialize, slot, login, sessions; keys are found
 * again by label and CKA_ID on first use), probe it, and close the breaker.
 */
export class PoolMember {
  state: HsmMemberState = 'probing';
  conn: MemberConnection | undefined;
  inFlight = 0;
  failures = 0;
  latencyMs = 0;
  private consecutive = 0;
  private idle: (() => void) | undefined;
  private drained: Promise<void> | undefined;
  private recovering: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  private retiredCalls = 0;
  private lastLogged: string | undefined;
  /** Told of every state change (the pool drops its cached health). */
  onStateChange: (() => void) | undefined;

  constructor(readonly spec: MemberSpec, private readonly events: MemberEvents = {}) {}

  get name(): string {
    return this.spec.name;
  }

  get callCount(): number {
    return this.retiredCalls + (this.conn?.callCount ?? 0);
  }

  /** The first connection. On failure the member stays down and keeps trying (unless the PIN is wrong); the error is rethrown. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      this.setState('down');
      if (!isFatalForReconnect(err) && !this.closed) this.recovering = this.recover();
      throw err;
    }
  }

  health(): HsmMemberHealth {
    return { name: this.name, state: this.state, latencyMs: this.latencyMs, failures: this.failures, inFlight: this.inFlight };
  }

  /** After a successful call: a success closes the run of transport failures. */
  succeeded(): void {
    this.consecutive = 0;
  }

  /** After a failed call; true when the failure means "this member is gone" (so another member may take the call). */
  failed(err: unknown): boolean {
    let kind = failureKind(err);
    if (kind === 'unclear') kind = this.conn?.probe && !this.conn.probe().ok ? 'gone' : 'request';
    if (kind === 'request') return false;
    this.failures++;
    if (kind === 'gone' || ++this.consecutive >= TRANSPORT_FAILURES_TO_OPEN) this.trip(err);
    return kind === 'gone';
  }

  /** Ends one call; the last one out lets a waiting reconnect or close proceed. */
  release(): void {
    if (--this.inFlight === 0 && this.idle) {
      const resume = this.idle;
      this.idle = undefined;
      this.drained = undefined;
      resume();
    }
  }

  /** The background health probe (cheap, no crypto): an answer-less member is taken out within one probe period. */
  async probe(): Promise<void> {
    const conn = this.conn;
    if (this.state !== 'up' || !conn) return;
    const result = conn.probe ? conn.probe() : await conn.health();
    if (this.conn !== conn || this.state !== 'up') return;
    this.latencyMs = result.latencyMs;
    if (!result.ok) {
      this.failures++;
      this.trip(unavailable(result.error ?? 'probe failed'));
    }
  }

  /** Takes no new calls from now; waits for in-flight ones, then closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state = 'down';
    this.wake?.();
    await this.recovering;
    await this.drain();
    await this.retire();
    this.spec.dispose?.();
  }

  private trip(err: unknown): void {
    if (this.state !== 'up' || this.closed) return;
    this.setState('down');
    this.note(`HSM member ${this.name} is out: ${err instanceof Error ? err.message : String(err)}; reconnecting`);
    this.recovering = this.recover();
  }

  private async recover(): Promise<void> {
    let delay = RECONNECT_FIRST_MS;
    while (!this.closed) {
      await this.drain();
      if (this.closed) return;
      await this.retire();
      try {
        await this.connect();
        this.note(`HSM member ${this.name} is back`);
        return;
      } catch (err) {
        if (this.closed) return;
        this.setState('down');
        if (isFatalForReconnect(err)) {
          // Never log in again with this PIN: each try counts down the token's PIN tries.
          this.note(`HSM member ${this.name} stays out: ${(err as Error).message}; fix the PIN, then replace the member or restart`);
          return;
        }
        this.note(`HSM member ${this.name} reconnect failed: ${err instanceof Error ? err.message : String(err)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => { clearTimeout(timer); resolve(); };
        });
        this.wake = undefined;
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    }
  }

  private async connect(): Promise<void> {
    this.setState('probing');
    const conn = await this.spec.open();
    let result: HsmHealth;
    try {
      result = conn.probe ? conn.probe() : await conn.health();
      if (!result.ok) throw unavailable(result.error ?? 'probe failed');
      if (this.closed) throw new KeyholdError('ERR_HSM_UNAVAILABLE', `HSM member ${this.name} was removed`);
    } catch (err) {
      this.retiredCalls += conn.callCount;
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.conn = conn;
    this.latencyMs = result.latencyMs;
    this.consecutive = 0;
    this.lastLogged = undefined;
    this.setState('up');
  }

  private drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    this.drained ??= new Promise((resolve) => { this.idle = resolve; });
    return this.drained;
  }

  private async retire(): Promise<void> {
    const old = this.conn;
    this.conn = undefined;
    if (!old) return;
    this.retiredCalls += old.callCount;
    await old.close().catch(() => undefined);
  }

  private setState(state: HsmMemberState): void {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange?.();
  }

  /** The same message is logged once per outage, not once per back-off step. */
  private note(message: string): void {
    if (message === this.lastLogged) return;
    this.lastLogged = message;
    this.events.log?.(message);
  }
}
