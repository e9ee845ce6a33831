import { KeyholdError } from '../errors.js';

const SEGMENT = /^[A-Za-z0-9._-]+$/;
export const MAX_PATH_LENGTH = 512;

/**
 * Logical paths are '/'-separated segments of [A-Za-z0-9._-], no empty or '.'/'..' segments:
 * one path means one record, and no path escapes its prefix (Vault's barrier view does the same).
 */
export function assertLogicalPath(path: string, what = 'path'): void {
  if (path.length === 0 || path.length > MAX_PATH_LENGTH) throw new KeyholdError('ERR_BAD_REQUEST', `${what} must be 1 to ${MAX_PATH_LENGTH} characters`);
  for (const segment of path.split('/')) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new KeyholdError('ERR_BAD_REQUEST', `${what} "${path}" has an invalid segment; use [A-Za-z0-9._-] separated by '/'`);
    }
  }
}
