import type { KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { KeyholdError } from '../errors.js';
import { unavailable } from './breaker.js';
import { PoolMember, type MemberConnection, type MemberSpec } from './member.js';
import type {
  GeneratedHsmKey, Hsm, HsmCapabilities, HsmHealth, HsmKey, HsmKeyAttributes, HsmKeyKind, HsmTokenInfo, OaepHash,
} from './types.js';

const HEALTH_REUSE_MS = 200;

/** Told about calls and failovers (src/api/metrics.ts); never told keys, data or PINs. */
export interface HsmPoolObserver {
  call?(member: string, seconds: number): void;
  failover?(from: string): void;
}

export interface HsmPoolOptions<C extends { name: string }> {
  /** Turns a member's configuration into something that opens connections to it. */
  spec(config: C, others: readonly C[]): MemberSpec;
  log?(message: string): void;
  /** Period of the background probe of healthy members (default 1000 ms): readiness turns false within it when no call notices first. */
  probeIntervalMs?: number;
  /** Runs after close (removes the module copies' folder). */
  onClose?(): void;
}

/**
 * The one Hsm the product uses: calls spread over the healthy members of an HSM cluster (least
 * in-flight, ties rotated), a circuit breaker per member (member.ts), and idempotent operations
 * retried once on each other healthy member when a member turns out to be gone. A single-endpoint
 * configuration is a pool of one, so the server, the KMS plugin and `keyhold dev` share the
 * outage recovery.
 *
 * Not retried: key generation and destruction. A generation whose reply was lost may have made the
 * key (a retry would then fail with ERR_CONFLICT or, worse, make a second object), and a destroy
 * is not a call a client should see done twice behind its back; the caller gets 503 and decides.
 */
export class HsmPool<C extends { name: string } = { name: string }> implements Hsm {
  private members: PoolMember[] = [];
  private configs: C[] = [];
  private next = 0;
  private observer: HsmPoolObserver | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly generating = new Set<string>();
  /** Token-object writes, one at a time across members too (Pkcs11Hsm explains why). */
  private objectWrites: Promise<unknown> = Promise.resolve();
  private membersChange: Promise<unknown> = Promise.resolve();
  private retiredCalls = 0;
  private closed = false;
  private healthCache: HsmHealth | undefined;

  private constructor(
    private readonly options: HsmPoolOptions<C>,
    readonly token: HsmTokenInfo,
    readonly capabilities: HsmCapabilities,
    members: PoolMember[],
    configs: C[],
  ) {
    this.members = members;
    this.configs = configs;
    for (const m of members) m.onStateChange = this.stateChanged;
    this.timer = setInterval(() => { void this.probeAll(); }, options.probeIntervalMs ?? 1000);
    this.timer.unref();
  }

  /**
   * Opens every member; resolves once at least one is up (the others keep reconnecting in the
   * background). With none up, rejects with the first member's error (a wrong PIN, a missing
   * module) after closing them all.
   */
  static async open<C extends { name: string }>(configs: readonly C[], options: HsmPoolOptions<C>): Promise<HsmPool<C>> {
    if (configs.length === 0) throw new KeyholdError('ERR_CONFIG', 'the HSM cluster has no members');
    const names = new Set(configs.map((c) => c.name));
    if (names.size !== configs.length) throw new KeyholdError('ERR_CONFIG', 'HSM member names must be unique');
    const members: PoolMember[] = [];
    const errors: Array<[string, unknown]> = [];
    // One after the other: a member's env is set in process.env around its C_Initialize.
    for (let i = 0; i < configs.length; i++) {
      const member = new PoolMember(options.spec(configs[i] as C, configs.slice(0, i)), { log: options.log });
      members.push(member);
      await member.start().catch((err: unknown) => { errors.push([member.name, err]); });
    }
    const first = members.find((m) => m.state === 'up' && m.conn);
    if (!first?.conn) {
      await Promise.all(members.map((m) => m.close()));
      options.onClose?.();
      throw errors[0]?.[1] ?? unavailable();
    }
    for (const [name, err] of errors) options.log?.(`HSM member ${name} did not open: ${err instanceof Error ? err.message : String(err)}; retrying in the background`);
    return new HsmPool(options, first.conn.token, { ...first.conn.capabilities }, members, [...configs]);
  }

  private readonly stateChanged = (): void => {
    this.healthCache = undefined;
  };

  setObserver(observer: HsmPoolObserver | undefined): void {
    this.observer = observer;
  }

  /**
   * Applies a new member list without a restart: new members join (and keep reconnecting until they
   * answer), members no longer listed take no new calls and are closed once their in-flight calls
   * end; a member whose configuration changed is replaced. Changes apply one at a time.
   */
  setMembers(configs: readonly C[]): Promise<void> {
    const change = this.membersChange.then(() => this.applyMembers(configs));
    this.membersChange = change.catch(() => undefined);
    return change;
  }

  memberNames(): string[] {
    return this.members.map((m) => m.name);
  }

  get callCount(): number {
    let total = this.retiredCalls;
    for (const m of this.members) total += m.callCount;
    return total;
  }

  findKey(label: string, kind: HsmKeyKind): HsmKey | null {
    return this.runSync((c) => c.findKey(label, kind));
  }

  async findOrCreateKey(label: string, kind: HsmKeyKind): Promise<HsmKey> {
    return this.findKey(label, kind) ?? this.generateKey(label, kind);
  }

  async generateKey(label: string, kind: HsmKeyKind): Promise<GeneratedHsmKey> {
    if (this.generating.has(label)) throw new KeyholdError('ERR_CONFLICT', `an HSM key labelled "${label}" already exists`);
    this.generating.add(label);
    try {
      const key = await this.oneObjectWriteAtATime(() => this.run((c) => c.generateKey(label, kind), false));
      this.forgetElsewhere(label);
      return key;
    } finally {
      this.generating.delete(label);
    }
  }

  listKeys(labelPrefix: string, kind: HsmKeyKind): HsmKey[] {
    return this.runSync((c) => c.listKeys(labelPrefix, kind));
  }

  objectId(key: HsmKey): Buffer {
    return this.runSync((c) => c.objectId(key));
  }

  async destroyKey(key: HsmKey): Promise<void> {
    try {
      await this.oneObjectWriteAtATime(() => this.run((c) => c.destroyKey(key), false));
    } finally {
      this.forgetElsewhere(key.label);
    }
  }

  aesGcmEncrypt(key: HsmKey, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.run((c) => c.aesGcmEncrypt(key, plaintext, aad), true);
  }

  aesGcmDecrypt(key: HsmKey, blob: Buffer, aad: Buffer): Promise<Buffer> {
    return this.run((c) => c.aesGcmDecrypt(key, blob, aad), true);
  }

  hmacSha256(key: HsmKey, data: Buffer): Promise<Buffer> {
    return this.run((c) => c.hmacSha256(key, data), true);
  }

  sign(key: HsmKey, data: Buffer): Promise<Buffer> {
    return this.run((c) => c.sign(key, data), true);
  }

  rsaEncrypt(key: HsmKey, publicKey: KeyObject, plaintext: Buffer, hash: OaepHash): Promise<Buffer> {
    return this.run((c) => c.rsaEncrypt(key, publicKey, plaintext, hash), true);
  }

  rsaDecrypt(key: HsmKey, ciphertext: Buffer, hash: OaepHash): Promise<Buffer> {
    return this.run((c) => c.rsaDecrypt(key, ciphertext, hash), true);
  }

  probeOaepHash(key: HsmKey, publicKey: KeyObject): Promise<OaepHash> {
    return this.run((c) => c.probeOaepHash(key, publicKey), true);
  }

  attributes(key: HsmKey): HsmKeyAttributes {
    return this.runSync((c) => c.attributes(key));
  }

  /** An object write: one member, not retried (a lost reply may already have created it), in the one write queue. */
  putDataObject(label: string, value: Buffer): Promise<void> {
    return this.oneObjectWriteAtATime(() => this.run((c) => c.putDataObject(label, value), false));
  }

  /** A read: safe to retry on another member (members hold the same objects). */
  getDataObject(label: string): Promise<Buffer | null> {
    return this.run((c) => c.getDataObject(label), true);
  }

  destroyDataObject(label: string): Promise<void> {
    return this.oneObjectWriteAtATime(() => this.run((c) => c.destroyDataObject(label), false));
  }

  /** From the members' breaker states and last probes: no device call, always current. */
  async health(): Promise<HsmHealth> {
    const now = Date.now();
    // Reused for a moment only (scrapes and probes in a burst), so readiness follows a member's state at once.
    if (this.healthCache && now - this.healthCache.checkedAt < HEALTH_REUSE_MS) return this.healthCache;
    const members = this.members.map((m) => m.health());
    let latencyMs = Infinity;
    for (const m of members) if (m.state === 'up' && m.latencyMs < latencyMs) latencyMs = m.latencyMs;
    const ok = latencyMs !== Infinity;
    this.healthCache = { ok, checkedAt: now, latencyMs: ok ? latencyMs : 0, members, ...(ok ? {} : { error: 'no HSM member is available' }) };
    return this.healthCache;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.membersChange;
    const members = this.members;
    this.members = [];
    await Promise.all(members.map((m) => m.close()));
    this.options.onClose?.();
  }

  /** The hot path: pick, call, account; on "gone", the next healthy member not yet tried. */
  private async run<T>(call: (conn: MemberConnection) => Promise<T>, idempotent: boolean): Promise<T> {
    let member = this.pick(undefined);
    let tried: PoolMember[] | undefined;
    for (;;) {
      if (!member?.conn) throw unavailable();
      const observer = this.observer;
      const started = observer ? performance.now() : 0;
      member.inFlight++;
      try {
        const result = await call(member.conn);
        member.succeeded();
        member.release();
        observer?.call?.(member.name, (performance.now() - started) / 1000);
        return result;
      } catch (err) {
        member.release();
        const gone = member.failed(err);
        if (!gone) throw err;
        if (!idempotent) throw unavailable(`HSM member ${member.name} is unavailable`);
        (tried ??= []).push(member);
        const from = member.name;
        member = this.pick(tried);
        if (!member) throw unavailable();
        observer?.failover?.(from);
      }
    }
  }

  private runSync<T>(call: (conn: MemberConnection) => T): T {
    let member = this.pick(undefined);
    let tried: PoolMember[] | undefined;
    for (;;) {
      if (!member?.conn) throw unavailable();
      try {
        const result = call(member.conn);
        member.succeeded();
        return result;
      } catch (err) {
        if (!member.failed(err)) throw err;
        (tried ??= []).push(member);
        member = this.pick(tried);
      }
    }
  }

  /** The up member with the fewest calls in flight; the starting point rotates so ties spread. */
  private pick(tried: PoolMember[] | undefined): PoolMember | undefined {
    const list = this.members;
    const n = list.length;
    if (n === 0) return undefined;
    const start = this.next++ % n;
    if (this.next >= 1 << 30) this.next = 0;
    let best: PoolMember | undefined;
    for (let i = 0; i < n; i++) {
      const m = list[(start + i) % n] as PoolMember;
      if (m.state !== 'up' || (tried !== undefined && tried.includes(m))) continue;
      if (best === undefined || m.inFlight < best.inFlight) best = m;
    }
    return best;
  }

  private forgetElsewhere(label: string): void {
    for (const m of this.members) m.conn?.forget?.(label);
  }

  private oneObjectWriteAtATime<T>(write: () => Promise<T>): Promise<T> {
    const result = this.objectWrites.then(write);
    this.objectWrites = result.catch(() => undefined);
    return result;
  }

  private async probeAll(): Promise<void> {
    for (const m of this.members) {
      try {
        await m.probe();
      } catch {
        // A probe that throws is a failed probe; the member's own breaker handles the rest.
      }
    }
  }

  private async applyMembers(configs: readonly C[]): Promise<void> {
    if (this.closed) return;
    const names = new Set(configs.map((c) => c.name));
    if (names.size !== configs.length) throw new KeyholdError('ERR_CONFIG', 'HSM member names must be unique');
    const wanted = new Map(configs.map((c) => [c.name, c]));
    const keep: PoolMember[] = [];
    const keepConfigs: C[] = [];
    const removed: PoolMember[] = [];
    for (const [i, member] of this.members.entries()) {
      const config = wanted.get(member.name);
      const current = this.configs[i] as C;
      if (config && JSON.stringify(config) === JSON.stringify(current)) {
        keep.push(member);
        keepConfigs.push(current);
        wanted.delete(member.name);
      } else {
        removed.push(member);
      }
    }
    const added: PoolMember[] = [];
    const addedConfigs: C[] = [];
    for (const config of wanted.values()) {
      const member = new PoolMember(this.options.spec(config, [...keepConfigs, ...addedConfigs]), { log: this.options.log });
      member.onStateChange = this.stateChanged;
      added.push(member);
      addedConfigs.push(config);
    }
    // From here the removed members get no new calls; the added ones take calls once up.
    this.members = [...keep, ...added];
    this.configs = [...keepConfigs, ...addedConfigs];
    this.healthCache = undefined;
    for (const m of removed) this.options.log?.(`HSM member ${m.name} removed: draining`);
    await Promise.all([
      ...added.map(async (m) => {
        await m.start().catch((err: unknown) => this.options.log?.(`HSM member ${m.name} did not open: ${err instanceof Error ? err.message : String(err)}; retrying in the background`));
      }),
      ...removed.map(async (m) => {
        await m.close();
        this.retiredCalls += m.callCount;
      }),
    ]);
  }
}
