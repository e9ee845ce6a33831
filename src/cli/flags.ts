import { KeyholdError } from '../errors.js';

/** A whole number ≥ 1 from a flag: NaN or 0 would silently disable a rotation or make a tight loop. */
export function wholeNumber(flag: string, value: string): number {
  if (!/^[1-9]\d{0,15}$/.test(value)) throw new KeyholdError('ERR_CONFIG', `${flag} must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return Number(value);
}
