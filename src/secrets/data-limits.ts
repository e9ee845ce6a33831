import { KeyholdError } from '../errors.js';
import type { SecretData } from './types.js';

/** Secret data nests at most this deep: the `data` object itself is level 1. */
export const MAX_SECRET_DEPTH = 32;

/**
 * Refuses secret data that would not come back as it was sent. Numbers that overflowed to ±Infinity
 * at parse (`1e400`) would be stored as `null` by JSON.stringify; data nested deeper than
 * MAX_SECRET_DEPTH is refused before anything recursive (stringify, serialisation) runs on it.
 * One iterative walk, only on secret writes.
 */
export function assertSecretData(data: SecretData): void {
  const pending: Array<{ value: object; depth: number }> = [{ value: data, depth: 1 }];
  for (let item = pending.pop(); item; item = pending.pop()) {
    if (item.depth > MAX_SECRET_DEPTH) throw new KeyholdError('ERR_JSON_TOO_DEEP', `secret data may nest at most ${MAX_SECRET_DEPTH} levels`);
    for (const child of Array.isArray(item.value) ? item.value as unknown[] : Object.values(item.value)) {
      if (typeof child === 'number') {
        if (!Number.isFinite(child)) throw new KeyholdError('ERR_BAD_REQUEST', 'secret data holds a number too large to store (it is not finite)');
      } else if (child !== null && typeof child === 'object') {
        pending.push({ value: child, depth: item.depth + 1 });
      }
    }
  }
}
