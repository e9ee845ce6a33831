/**
 * Operator accounts in the barrier (`sys/operators/accounts/<name>`): the password hash, the TOTP
 * secret and last accepted time step, the recovery-code hashes and the lockout state, all in one
 * record, so that every attempt is one conditional commit of that record. Two replicas (or two
 * requests) accepting the same TOTP code, or the same recovery code, cannot both commit: the second
 * reads the record again and finds the code used. The lock is in the same record, so it holds on
 * every replica and across restarts.
 *
 * Every attempt that names a password pays one scrypt hash, whether or not the account exists
 * (an unknown name is checked against a dummy hash, its failures are counted in memory, and it
 * writes a decoy record as a failure on a real account writes its record): the answer and its
 * timing do not tell which accounts exist.
 */
import type { BarrierView } from '../barrier/view.js';
import { KeyholdError } from '../errors.js';
import { HashLimiter } from './hash-limit.js';
import {
  accountLocked, afterFailure, DEFAULT_ACCOUNT_LOCKOUT, lockedFor, MemoryLockout, type FailureState, type LockoutSettings,
} from './lockout.js';
import { checkNewPassword, DUMMY_HASH, hashPassword, needsRehash, verifyPassword } from './password-hash.js';
import { findRecoveryCode, newRecoveryCodes } from './recovery-codes.js';
import { checkTotp, newTotpSecret, TOTP_CODE_PATTERN, totpUri } from './totp.js';
import { OPERATOR_NAME_PATTERN, type FailureReason, type OperatorRecord, type OperatorSummary, type SecondFactor } from './types.js';

const MAX_ATTEMPTS = 16;
const accountKey = (name: string) => `accounts/${name}`;
const DECOY_KEY = 'decoy';
/** A TOTP secret nobody holds, checked for unknown names so they cost what a real check costs. */
const DECOY_TOTP_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

export interface OperatorStoreOptions {
  lockout?: LockoutSettings;
  /** Password hashes at once (each holds 32 MiB and a libuv thread for ~¼ s); default 2. */
  hashConcurrency?: number;
  /** Hashes waiting for a slot before logins are refused with ERR_LOGIN_BUSY; default 64. */
  hashQueue?: number;
  /** The issuer authenticator apps show beside the account name; default `keyhold`. */
  totpIssuer?: string;
  /** How long a new or reset account may wait to enrol its second factor; default 72 h. */
  enrolmentHours?: number;
  /** The clock (tests). */
  now?: () => number;
}

type Step<R> = { ok: true; record: OperatorRecord; result: R } | { ok: false; reason: FailureReason };
type FailureCode = 'ERR_LOGIN_FAILED' | 'ERR_SECOND_FACTOR_INVALID';

const FAILURE_MESSAGES: Record<FailureCode, string> = {
  ERR_LOGIN_FAILED: 'login failed: wrong username, password or second factor',
  ERR_SECOND_FACTOR_INVALID: 'the second factor is not valid',
};

function failure(code: FailureCode, reason: FailureReason): KeyholdError {
  return new KeyholdError(code, FAILURE_MESSAGES[code], { details: { reason } });
}

function summary(r: OperatorRecord): OperatorSummary {
  return {
    name: r.name, createdAt: r.createdAt, passwordChangedAt: r.passwordChangedAt, enrolled: r.totp !== undefined,
    recoveryCodesLeft: r.recoveryCodes?.length ?? 0, failures: r.failures,
    ...(r.lockedUntil !== undefined && r.lockedUntil > Date.now() ? { lockedUntil: new Date(r.lockedUntil).toISOString() } : {}),
    ...(r.lastLoginAt ? { lastLoginAt: r.lastLoginAt } : {}),
  };
}

const stateOf = (r: OperatorRecord): FailureState => ({ failures: r.failures, ...(r.lockedUntil !== undefined ? { lockedUntil: r.lockedUntil } : {}) });

function cleared(r: OperatorRecord): OperatorRecord {
  const next: OperatorRecord = { ...r, failures: 0 };
  delete next.lockedUntil;
  return next;
}

export function assertOperatorName(name: string): void {
  if (!OPERATOR_NAME_PATTERN.test(name)) throw new KeyholdError('ERR_BAD_REQUEST', `operator names match ${OPERATOR_NAME_PATTERN.source}`);
}

export class OperatorStore {
  readonly limiter: HashLimiter;
  private readonly lockout: LockoutSettings;
  private readonly unknown: MemoryLockout;
  private readonly issuer: string;
  private readonly enrolmentMs: number;
  private readonly now: () => number;

  constructor(private readonly view: BarrierView, options: OperatorStoreOptions = {}) {
    this.limiter = new HashLimiter(options.hashConcurrency ?? 2, options.hashQueue ?? 64);
    this.lockout = options.lockout ?? DEFAULT_ACCOUNT_LOCKOUT;
    this.unknown = new MemoryLockout(this.lockout);
    this.issuer = options.totpIssuer ?? 'keyhold';
    this.enrolmentMs = (options.enrolmentHours ?? 72) * 3600_000;
    this.now = options.now ?? Date.now;
  }

  /** Creates an account with an initial password; it cannot log in until its TOTP is enrolled. */
  async create(name: string, password: string): Promise<OperatorSummary> {
    assertOperatorName(name);
    checkNewPassword(password, name);
    const passwordHash = await hashPassword(password, this.limiter);
    const at = new Date(this.now()).toISOString();
    const record: OperatorRecord = { name, createdAt: at, passwordHash, passwordChangedAt: at, failures: 0 };
    const read = await this.view.read<OperatorRecord>(accountKey(name));
    if (read.value) throw new KeyholdError('ERR_OPERATOR_EXISTS', `operator "${name}" exists`);
    if (!(await this.view.commit([read], [this.view.write(accountKey(name), record)]))) throw new KeyholdError('ERR_OPERATOR_EXISTS', `operator "${name}" exists`);
    return summary(record);
  }

  async list(): Promise<string[]> {
    return (await this.view.list('accounts/')).map((k) => k.slice('accounts/'.length));
  }

  async describe(name: string): Promise<OperatorSummary> {
    return summary(await this.get(name));
  }

  async exists(name: string): Promise<boolean> {
    return OPERATOR_NAME_PATTERN.test(name) && (await this.view.get<OperatorRecord>(accountKey(name))) !== null;
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    await this.view.delete(accountKey(name));
  }

  /**
   * An administrator's reset: a new password, and the second factor, recovery codes and lockout
   * cleared; the person enrols again (within the enrolment window).
   */
  async reset(name: string, password: string): Promise<OperatorSummary> {
    assertOperatorName(name);
    checkNewPassword(password, name);
    const passwordHash = await hashPassword(password, this.limiter);
    return this.view.update<OperatorRecord, OperatorSummary>(accountKey(name), (current) => {
      if (!current) throw new KeyholdError('ERR_OPERATOR_NOT_FOUND', `operator "${name}" does not exist`);
      const at = new Date(this.now()).toISOString();
      const next: OperatorRecord = { name, createdAt: current.createdAt, passwordHash, passwordChangedAt: at, failures: 0, ...(current.lastLoginAt ? { lastLoginAt: current.lastLoginAt } : {}) };
      return { writes: [this.view.write(accountKey(name), next)], result: summary(next) };
    });
  }

  /**
   * Begins TOTP enrolment of an account that has none (new, or reset): a fresh secret, shown once
   * as an otpauth URI. An enrolled account gets the same answer as a wrong password: this route
   * must not tell someone holding only a password that it is right.
   */
  async beginEnrolment(name: string, password: string): Promise<{ uri: string; secret: string }> {
    const secret = await newTotpSecret();
    const uri = await totpUri(this.issuer, name, secret);
    return this.attempt(name, password, 'ERR_LOGIN_FAILED', async (record, now) => {
      if (record.totp) return { ok: false, reason: 'enrolled' };
      if (this.enrolmentExpired(record, now)) return { ok: false, reason: 'enrolment-expired' };
      return { ok: true, record: { ...record, pendingTotp: { secret, createdAt: new Date(now).toISOString() } }, result: { uri, secret } };
    });
  }

  /** Confirms enrolment with a code from the new secret; answers the recovery codes, once. */
  async confirmEnrolment(name: string, password: string, code: string): Promise<{ recoveryCodes: string[] }> {
    const { codes, hashes } = newRecoveryCodes();
    return this.attempt(name, password, 'ERR_LOGIN_FAILED', async (record, now) => {
      if (record.totp) return { ok: false, reason: 'enrolled' };
      if (!record.pendingTotp) return { ok: false, reason: 'no-pending-enrolment' };
      if (this.enrolmentExpired(record, now)) return { ok: false, reason: 'enrolment-expired' };
      const step = await checkTotp(record.pendingTotp.secret, code, undefined, now);
      if (step === null) return { ok: false, reason: 'totp' };
      const next: OperatorRecord = { ...record, totp: { secret: record.pendingTotp.secret, lastStep: step, enrolledAt: new Date(now).toISOString() }, recoveryCodes: hashes };
      delete next.pendingTotp;
      return { ok: true, record: next, result: { recoveryCodes: codes } };
    });
  }

  /**
   * A login's check: password, then the second factor (a TOTP code of a step not used before, or
   * an unused recovery code, which is then spent). ERR_LOGIN_FAILED whatever was wrong;
   * ERR_ENROLMENT_REQUIRED (after a right password) for an account without a second factor.
   */
  async authenticate(name: string, password: string, second: SecondFactor): Promise<OperatorSummary> {
    return this.attempt(name, password, 'ERR_LOGIN_FAILED', async (record, now) => {
      if (!record.totp) throw new KeyholdError('ERR_ENROLMENT_REQUIRED', 'this account has no second factor yet: enrol it first (keyhold account enrol)');
      const checked = await this.checkSecondFactor(record, second, now);
      if (!checked.ok) return checked;
      let next: OperatorRecord = { ...checked.record, lastLoginAt: new Date(now).toISOString() };
      // Parameters raised since this hash was made: rewrite it while the password is at hand.
      if (needsRehash(record.passwordHash)) next = { ...next, passwordHash: await hashPassword(password, this.limiter) };
      return { ok: true, record: next, result: summary(next) };
    });
  }

  /** The person changes their own password: the old one and a second factor. */
  async changePassword(name: string, password: string, second: SecondFactor, newPassword: string): Promise<void> {
    checkNewPassword(newPassword, name);
    const passwordHash = await hashPassword(newPassword, this.limiter);
    await this.attempt(name, password, 'ERR_LOGIN_FAILED', async (record, now) => {
      if (!record.totp) throw new KeyholdError('ERR_ENROLMENT_REQUIRED', 'this account has no second factor yet: enrol it first (keyhold account enrol)');
      const checked = await this.checkSecondFactor(record, second, now);
      if (!checked.ok) return checked;
      return { ok: true, record: { ...checked.record, passwordHash, passwordChangedAt: new Date(now).toISOString() }, result: undefined };
    });
  }

  /**
   * Re-authentication of a logged-in person (an approver approving): a TOTP code (six digits) of
   * a step not used before, or an unused recovery code, which is then spent. Throws
   * ERR_SECOND_FACTOR_INVALID (401) otherwise; failures count toward the account's lockout
   * (ERR_ACCOUNT_LOCKED, 423, while locked).
   */
  async verifySecondFactor(name: string, code: string): Promise<void> {
    if (!OPERATOR_NAME_PATTERN.test(name)) throw failure('ERR_SECOND_FACTOR_INVALID', 'unknown-user');
    const second: SecondFactor = TOTP_CODE_PATTERN.test(code) ? { totp: code } : { recoveryCode: code };
    await this.attempt(name, undefined, 'ERR_SECOND_FACTOR_INVALID', async (record, now) => {
      if (!record.totp) return { ok: false, reason: 'not-enrolled' };
      const checked = await this.checkSecondFactor(record, second, now);
      return checked.ok ? { ok: true, record: checked.record, result: undefined } : checked;
    });
  }

  private async get(name: string): Promise<OperatorRecord> {
    assertOperatorName(name);
    const record = await this.view.get<OperatorRecord>(accountKey(name));
    if (!record) throw new KeyholdError('ERR_OPERATOR_NOT_FOUND', `operator "${name}" does not exist`);
    return record;
  }

  private enrolmentExpired(record: OperatorRecord, now: number): boolean {
    return now - Date.parse(record.passwordChangedAt) > this.enrolmentMs;
  }

  /** The record with the factor spent (TOTP step recorded, recovery code removed), or why not. */
  private async checkSecondFactor(record: OperatorRecord, second: SecondFactor, now: number): Promise<Step<undefined>> {
    const totp = record.totp;
    if (!totp) return { ok: false, reason: 'not-enrolled' };
    if ('totp' in second) {
      const step = await checkTotp(totp.secret, second.totp, totp.lastStep, now);
      if (step === null) {
        // Only to name the reason in the audit record: valid but of a step already used.
        const replay = (await checkTotp(totp.secret, second.totp, undefined, now)) !== null;
        return { ok: false, reason: replay ? 'totp-replay' : 'totp' };
      }
      return { ok: true, record: { ...record, totp: { ...totp, lastStep: step } }, result: undefined };
    }
    const codes = record.recoveryCodes ?? [];
    const index = findRecoveryCode(codes, second.recoveryCode);
    if (index < 0) return { ok: false, reason: 'recovery-code' };
    return { ok: true, record: { ...record, recoveryCodes: codes.filter((_, i) => i !== index) }, result: undefined };
  }

  /**
   * One attempt on an account: refused while locked; the password (if given) checked once; then
   * `step`, whose record is committed (failures cleared) only if the account record is still as
   * read, else everything but the hash is done again on the new record. A failure is counted.
   */
  private async attempt<R>(name: string, password: string | undefined, code: FailureCode, step: (record: OperatorRecord, now: number) => Promise<Step<R>>): Promise<R> {
    if (!OPERATOR_NAME_PATTERN.test(name)) return this.unknownUser(name, password, code);
    let verifiedHash: string | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await this.view.read<OperatorRecord>(accountKey(name));
      const record = read.value;
      if (!record) return this.unknownUser(name, password, code);
      const now = this.now();
      const locked = lockedFor(stateOf(record), now);
      if (locked > 0) throw accountLocked(locked);
      if (password !== undefined && verifiedHash !== record.passwordHash) {
        if (!(await verifyPassword(record.passwordHash, password, this.limiter))) return this.failed(name, 'password', code);
        verifiedHash = record.passwordHash;
      }
      const out = await step(record, now);
      if (!out.ok) return this.failed(name, out.reason, code);
      if (await this.view.commit([read], [this.view.write(accountKey(name), cleared(out.record))])) return out.result;
    }
    throw new KeyholdError('ERR_CONFLICT', 'the account changed too often during this attempt; retry');
  }

  /**
   * Counts a failure on the account, unless it was locked meanwhile (by concurrent failures): then
   * the answer is the lock, whatever this attempt's result, so that a right password checked while
   * the lock engaged cannot be told from a wrong one.
   */
  private async failed(name: string, reason: FailureReason, code: FailureCode): Promise<never> {
    const now = this.now();
    const locked = await this.view.update<OperatorRecord, number>(accountKey(name), (current) => {
      if (!current) return { writes: [], result: 0 };
      const seconds = lockedFor(stateOf(current), now);
      if (seconds > 0) return { writes: [], result: seconds };
      const next = afterFailure(stateOf(current), this.lockout, now);
      const record: OperatorRecord = { ...current, failures: next.failures };
      if (next.lockedUntil !== undefined) record.lockedUntil = next.lockedUntil;
      return { writes: [this.view.write(accountKey(name), record)], result: 0 };
    });
    if (locked > 0) throw accountLocked(locked);
    throw failure(code, reason);
  }

  /** An unknown name: the same hash, TOTP check, write and lockout as a real account's failure. */
  private async unknownUser(name: string, password: string | undefined, code: FailureCode): Promise<never> {
    const key = name.slice(0, 128);
    const locked = this.unknown.lockedFor(key, this.now());
    if (locked > 0) throw accountLocked(locked);
    if (password !== undefined) await verifyPassword(DUMMY_HASH, password, this.limiter);
    await checkTotp(DECOY_TOTP_SECRET, '000000', undefined, this.now());
    await this.view.update<{ n: number }, void>(DECOY_KEY, (current) => ({ writes: [this.view.write(DECOY_KEY, { n: (current?.n ?? 0) + 1 })], result: undefined }));
    const again = this.unknown.lockedFor(key, this.now());
    if (again > 0) throw accountLocked(again);
    this.unknown.failed(key, this.now());
    throw failure(code, 'unknown-user');
  }
}
