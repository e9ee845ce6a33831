/**
 * How the audit log fails: one ERR_AUDIT_UNAVAILABLE error, and a reason that health shows (an
 * errno code, or what the identity watch or rotation saw). A terminal failure needs a restart.
 */
import { KeyholdError } from '../errors.js';

export interface Failure {
  error: KeyholdError;
  reason: string;
  at: string;
  terminal: boolean;
}

export function unavailable(message: string, cause?: unknown): KeyholdError {
  return new KeyholdError('ERR_AUDIT_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
}

/** The errno code of an I/O error, for health; anything else is IO_ERROR. */
export function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : 'IO_ERROR';
}

/** What every append gets while the log is failed. */
export function failedError(f: Failure | undefined): KeyholdError {
  return unavailable(`audit log is failed (${f?.reason ?? 'unknown'}) since ${f?.at ?? '?'}; requests are refused until ${f?.terminal ? 'restart' : 'it recovers'}`, f?.error);
}
