/** Operator accounts: people who log in with a password and a TOTP second factor. */

export { OPERATOR_NAME_PATTERN } from '../identity/person.js';

/** One account's barrier record (`sys/operators/accounts/<name>`): encrypted at rest like every record. */
export interface OperatorRecord {
  name: string;
  createdAt: string;
  /** password-hash.ts's self-describing scrypt string. */
  passwordHash: string;
  passwordChangedAt: string;
  /** The active second factor; absent until enrolment is confirmed (the account cannot log in). */
  totp?: {
    /** Base32 TOTP secret: only ever in this record and, once, in the enrolment answer. */
    secret: string;
    /** The last time step accepted: codes of this step or earlier are refused (replay). */
    lastStep: number;
    enrolledAt: string;
  };
  /** An enrolment begun and not yet confirmed (its secret was shown once). */
  pendingTotp?: { secret: string; createdAt: string };
  /** SHA-256 of each unused recovery code (recovery-codes.ts). */
  recoveryCodes?: string[];
  /** Consecutive failed attempts (password or second factor) since the last success. */
  failures: number;
  /** ms since the epoch; the account refuses every attempt until then. */
  lockedUntil?: number;
  lastLoginAt?: string;
}

/** What an administrator may see of an account: never a hash, secret or code. */
export interface OperatorSummary {
  name: string;
  createdAt: string;
  passwordChangedAt: string;
  /** TOTP confirmed: the account can log in. */
  enrolled: boolean;
  recoveryCodesLeft: number;
  failures: number;
  lockedUntil?: string;
  lastLoginAt?: string;
}

/** The second factor of an attempt: exactly one of them. */
export type SecondFactor = { totp: string } | { recoveryCode: string };

/**
 * Why an attempt failed, for the audit record only: the caller gets one answer whatever the reason,
 * so that a login does not tell which part was wrong or whether the account exists.
 */
export type FailureReason = 'unknown-user' | 'password' | 'totp' | 'totp-replay' | 'recovery-code' | 'not-enrolled' | 'enrolled' | 'no-pending-enrolment' | 'enrolment-expired';
