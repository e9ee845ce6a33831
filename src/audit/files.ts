/**
 * Naming of a rotated audit set. The active file keeps the configured path; a full file is renamed
 * to `<path>.<seq of its first entry, 12 digits>`, so names sort in chain order and each one says
 * where it must start, which makes a missing file visible even before its neighbours are read.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const DIGITS = 12;

export function rotatedName(activePath: string, firstSeq: number): string {
  return `${activePath}.${String(firstSeq).padStart(DIGITS, '0')}`;
}

export interface AuditFileRef {
  path: string;
  /** For a rotated file, the seq its name says it starts at. */
  firstSeq?: number;
}

/** Rotated siblings of `activePath` in chain order (names other than `<name>.<12 digits>` are ignored). */
export function rotatedFiles(activePath: string): AuditFileRef[] {
  const dir = dirname(activePath);
  const prefix = `${basename(activePath)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const pattern = new RegExp(`^\\d{${DIGITS}}$`);
  return names
    .filter((n) => n.startsWith(prefix) && pattern.test(n.slice(prefix.length)))
    .sort()
    .map((n) => ({ path: join(dir, n), firstSeq: Number(n.slice(prefix.length)) }));
}
