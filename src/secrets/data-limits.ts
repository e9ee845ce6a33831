import { KeyholdError } from '../errors.js';
import type { SecretData } from './types.js';

/** Secret data nests at most this deep: the `data` object itself is level 1. */
export const MAX_SECRET_DEPTH = 32;

/**
 * Refuses secret data that would not come back as it was sent. Numbers that overflowed to ±Infinity
 * at parse (`1e400`) would be stored as `null` by JSON.stringify; data nested deeper than
 * MAX_SECRET_DEPTH is refused before anything recursive (stringify, serialisation) runs on it.
 * One iterative walk per secret write; flat data (the common case) allocates nothing.
 */
export function assertSecretData(data: SecretData): void {
  let pending: Array<[object, number]> | undefined;
  let value: object = data;
  let depth = 1;
  for (;;) {
    if (depth > MAX_SECRET_DEPTH) throw new KeyholdError('ERR_JSON_TOO_DEEP', `secret data may nest at most ${MAX_SECRET_DEPTH} levels`);
    const record = value as Record<string, unknown>;
    // for…in over parsed JSON sees own keys only (Object.prototype's are not enumerable); arrays too.
    for (const key in record) {
      const child = record[key];
      if (typeof child === 'number') {
        if (!Number.isFinite(child)) throw new KeyholdError('ERR_BAD_REQUEST', 'secret data holds a number too large to store (it is not finite)');
      } else if (child !== null && typeof child === 'object') {
        (pending ??= []).push([child, depth + 1]);
      }
    }
    const next = pending?.pop();
    if (!next) return;
    [value, depth] = next;
  }
}
