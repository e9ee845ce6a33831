/**
 * Opens the root key and keeps trying, with exponential back-off, when it cannot: the plugin must
 * keep serving Status (honestly unhealthy) while the HSM or server is away. A wrong PIN is special:
 * every failed login counts toward locking the token, so the same PIN is never tried twice; the
 * next attempt waits until the PIN source (file or env) holds a different value.
 */
import { hash } from 'node:crypto';
import { isKeyholdError } from '../../errors.js';
import type { RootKey } from './root-key.js';

export interface ConnectorLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ConnectorOptions {
  open: () => Promise<RootKey>;
  /** The current PIN, or undefined when there is none to check (server mode); only its hash is kept. */
  readPin?: () => string | undefined;
  log: ConnectorLog;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often a PIN that failed is re-read to see whether it changed. */
  pinRecheckMs?: number;
  /** How often a connected root key's health is checked (its own probe is cached; default 5 s). */
  healthCheckMs?: number;
  /** Consecutive failed checks after which the root key is closed and opened again (default 3). */
  reconnectAfter?: number;
}

export class RootKeyConnector {
  #root: RootKey | undefined;
  #error: string | undefined = 'not connected yet';
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #rejectedPinHash: string | undefined;
  #lastLogged: string | undefined;
  #closed = false;
  #listeners: Array<(root: RootKey) => void> = [];
  #healthTimer: NodeJS.Timeout | undefined;
  #failedChecks = 0;

  constructor(private readonly options: ConnectorOptions) {}

  get root(): RootKey | undefined {
    return this.#root;
  }

  /** Why there is no root key (undefined once connected). */
  get error(): string | undefined {
    return this.#error;
  }

  onConnected(listener: (root: RootKey) => void): void {
    this.#listeners.push(listener);
  }

  /** Makes the first attempt; on failure the connector keeps retrying in the background. */
  async start(): Promise<void> {
    await this.#attempt();
  }

  #pinHash(): string | undefined {
    try {
      const pin = this.options.readPin?.();
      return pin === undefined ? undefined : hash('sha256', pin, 'hex');
    } catch {
      return undefined; // unreadable now; open() will report why
    }
  }

  async #attempt(): Promise<void> {
    if (this.#closed || this.#root) return;
    if (this.#rejectedPinHash !== undefined) {
      const now = this.#pinHash();
      if (now === this.#rejectedPinHash) {
        this.#schedule(this.options.pinRecheckMs ?? 2000);
        return;
      }
      this.#rejectedPinHash = undefined;
      this.options.log.info({}, 'the HSM PIN changed; trying to log in again');
    }
    try {
      const root = await this.options.open();
      if (this.#closed) {
        await root.close();
        return;
      }
      this.#root = root;
      this.#error = undefined;
      this.#failures = 0;
      this.#lastLogged = undefined;
      this.options.log.info({ rootKey: root.description }, 'root key available');
      for (const listener of this.#listeners) listener(root);
      if (root.reopenWhenLost) this.#watchHealth(root);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#error = message;
      this.#failures++;
      if (isKeyholdError(err, 'ERR_HSM_PIN_INCORRECT')) {
        this.#rejectedPinHash = this.#pinHash() ?? 'unreadable';
        this.#log(`${message}. Not retrying with this PIN: each failed login counts toward locking the token. Fix the PIN file or variable; the plugin retries when it changes`);
        this.#schedule(this.options.pinRecheckMs ?? 2000);
        return;
      }
      const delay = Math.min(this.options.maxBackoffMs ?? 60_000, (this.options.minBackoffMs ?? 1000) * 2 ** Math.min(this.#failures - 1, 16));
      this.#log(`root key unavailable: ${message}; retrying in ${Math.round(delay / 1000)} s (backing off)`);
      this.#schedule(delay);
    }
  }

  /**
   * A connected root key can be lost: an HSM restarted or failed over (its session and object
   * handles die with it, and no call on them works again), a network HSM's link dropped. After
   * `reconnectAfter` failed checks in a row the key is closed and opened again, with the same
   * back-off and PIN rules as the first time. Meanwhile Encrypt keeps using the in-memory KEK.
   */
  #watchHealth(root: RootKey): void {
    this.#failedChecks = 0;
    const arm = () => {
      this.#healthTimer = setTimeout(() => void check(), this.options.healthCheckMs ?? 5000);
      this.#healthTimer.unref();
    };
    const check = async () => {
      if (this.#closed || this.#root !== root) return;
      const health = await root.health().catch((err: unknown) => ({ ok: false, error: err instanceof Error ? err.message : String(err) }));
      if (this.#closed || this.#root !== root) return;
      if (health.ok) {
        this.#failedChecks = 0;
      } else if (++this.#failedChecks >= (this.options.reconnectAfter ?? 3)) {
        await this.#lose(root, health.error ?? 'unhealthy');
        return;
      }
      arm();
    };
    arm();
  }

  async #lose(root: RootKey, reason: string): Promise<void> {
    this.#root = undefined;
    this.#error = `root key lost: ${reason}`;
    this.#failures = 0;
    this.#log(`${this.#error}; closing it and connecting again`);
    await root.close().catch(() => undefined);
    this.#schedule(this.options.minBackoffMs ?? 1000);
  }

  /** One log line per distinct failure, not one per retry. */
  #log(message: string): void {
    if (message === this.#lastLogged) return;
    this.#lastLogged = message;
    this.options.log.error({}, message);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#attempt(), ms);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#healthTimer) clearTimeout(this.#healthTimer);
    const root = this.#root;
    this.#root = undefined;
    await root?.close();
  }
}
