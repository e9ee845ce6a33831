/**
 * Is the path still the file the log writes to? Checked after every batch's fdatasync (before it
 * is acknowledged) and by the probe every second. A deleted, replaced, cut or foreign-appended file
 * fails the log for good: recovering would silently go on in a file that is not the chain.
 */
import { lstatSync } from 'node:fs';
import { errnoOf } from './failure.js';

export interface FileIdentity {
  dev: number;
  ino: number;
}

export interface IdentityProblem {
  reason: string;
  message: string;
}

/**
 * The path must name the open file, and its size must lie between `least` (what is known to be
 * in it: acknowledged, or written before the fdatasync being checked) and what this process has
 * written: a file cut in place (`truncate -s 0`) keeps its identity, and another writer's bytes
 * would sit in the middle of the chain. The size comes with the lstat, at no extra cost.
 */
export function identityProblem(path: string, identity: FileIdentity, least: number, written: number): IdentityProblem | undefined {
  let stat;
  try {
    // lstat: a symbolic link put in the file's place is not the file, even if it points to it.
    stat = lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    return { reason: errnoOf(err), message: `cannot stat audit log ${path}: ${(err as Error).message}` };
  }
  if (stat === undefined) return { reason: 'FILE_DELETED', message: `audit log ${path} was deleted while open` };
  if (stat.dev !== identity.dev || stat.ino !== identity.ino) return { reason: 'FILE_REPLACED', message: `audit log ${path} was replaced by another file while open` };
  if (stat.size < least) return { reason: 'FILE_TRUNCATED', message: `audit log ${path} was cut to ${stat.size} bytes while open (${least} were written)` };
  if (stat.size > written) return { reason: 'FILE_APPENDED', message: `audit log ${path} has ${stat.size - written} bytes this process did not write` };
  return undefined;
}
