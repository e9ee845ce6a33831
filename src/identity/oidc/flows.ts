/**
 * Pending logins, in the barrier (so any replica can finish a login another began, and storage
 * sees only ciphertext): made by `auth-url`, consumed once by the callback. The `state` a browser
 * carries is `<expiry ms>.<256 random bits>`; the record's key is `flows/<expiry ms>/<sha256 of
 * the random part>`, so storage never sees a usable state in a path, an expired flow is refused
 * without a read, and the sweep finds expired flows from their keys alone.
 *
 * Single use: the callback deletes the record in a commit conditional on the bytes it read, so of
 * two callbacks with one state (a replay, or a race between replicas) exactly one proceeds.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { BarrierView } from '../../barrier/view.js';
import { KeyholdError } from '../../errors.js';
import { newCodeVerifier, randomToken } from './pkce.js';
import type { FlowRecord } from './types.js';

/** Long enough to log in at the provider with its second factor; short enough that a leaked state is soon worthless. */
export const FLOW_TTL_MS = 10 * 60_000;
/** A state as handed out (checked by the routes' schemas too). */
export const STATE_PATTERN = /^[0-9]{13}\.[A-Za-z0-9_-]{43}$/;

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');
const flowKey = (expiresAt: number, secret: string): string => `flows/${String(expiresAt).padStart(13, '0')}/${sha256(secret)}`;

const invalid = (why: string) => new KeyholdError('ERR_OIDC_STATE_INVALID', `state ${why}: start the login again`);

export interface NewFlow {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** The browser-binding cookie's value (only its hash is stored). */
  browserBinding: string;
}

export class FlowStore {
  constructor(private readonly view: Pick<BarrierView, 'put' | 'read' | 'commit' | 'remove' | 'list'>, private readonly now: () => number = Date.now) {}

  async create(input: Pick<FlowRecord, 'redirectUri' | 'issuer' | 'clientId' | 'maxAgeSeconds'>): Promise<NewFlow> {
    const expiresAt = this.now() + FLOW_TTL_MS;
    const secret = randomToken();
    const flow: NewFlow = { state: `${expiresAt}.${secret}`, nonce: randomToken(), codeVerifier: newCodeVerifier(), browserBinding: randomToken() };
    const record: FlowRecord = { ...input, nonce: flow.nonce, codeVerifier: flow.codeVerifier, browserBinding: sha256(flow.browserBinding), expiresAt };
    await this.view.put(flowKey(expiresAt, secret), record);
    return flow;
  }

  /**
   * The flow of `state`, deleted in the same step; ERR_OIDC_STATE_INVALID when it is malformed,
   * unknown, expired, already used, or (with `browserBinding`) was begun by another browser.
   */
  async consume(state: string, browserBinding?: string | null): Promise<FlowRecord> {
    const m = /^([0-9]{13})\.([A-Za-z0-9_-]{43})$/.exec(state);
    if (!m) throw invalid('is malformed');
    const expiresAt = Number(m[1]);
    if (expiresAt <= this.now()) throw invalid('has expired');
    const read = await this.view.read<FlowRecord>(flowKey(expiresAt, m[2] as string));
    const record = read.value;
    if (!record) throw invalid('is unknown or was already used');
    // Deleted before anything else is checked: a state is spent by its first use, whatever the outcome.
    if (!(await this.view.commit([read], [this.view.remove(flowKey(expiresAt, m[2] as string))]))) throw invalid('was already used');
    if (record.expiresAt <= this.now()) throw invalid('has expired');
    if (browserBinding !== undefined) {
      const presented = Buffer.from(sha256(browserBinding ?? ''), 'hex');
      if (browserBinding === null || !timingSafeEqual(presented, Buffer.from(record.browserBinding, 'hex'))) throw invalid('was issued to another browser (its login cookie is missing or different)');
    }
    return record;
  }

  /** Deletes up to `limit` expired flows (abandoned logins); returns how many. */
  async sweepExpired(limit = 1000): Promise<number> {
    const now = this.now();
    const due = (await this.view.list('flows/')).filter((key) => Number(key.split('/')[1]) <= now).slice(0, limit);
    if (due.length === 0) return 0;
    await this.view.commit([], due.map((key) => this.view.remove(key)));
    return due.length;
  }
}
