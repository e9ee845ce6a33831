import { KeyholdError } from '../../errors.js';
import type { Hsm } from '../../hsm/types.js';
import type { KeyMaterial } from '../key-material.js';
import type { KeyRecord, KeyVersionRecord, Protection } from '../types.js';
import { hsmProtection } from './hsm.js';
import { wrappedProtection } from './wrapped.js';
import type { MaterialWrapper } from './wrapper.js';

/** What the schemes reach: the HSM, and what wraps protection=wrapped material (on the HSM or in memory, wrapper.ts). */
export interface Custody {
  readonly hsm: Hsm;
  readonly wrapper: MaterialWrapper;
}

/**
 * The material of one new key version, made once and bound to a version number only when its
 * record is written: a rotation that loses a race to a concurrent one retries the record commit
 * with the next number instead of generating again (or leaking an HSM object per attempt).
 */
export interface PendingVersion {
  /**
   * True when the material itself names its version (wrapped material: the version is in the
   * wrap's AAD), so another version number needs `entryFor` again. An HSM object does not: its
   * record entry only points at it, so any number may be written into `entryFor`'s result.
   */
  readonly boundToVersion: boolean;
  /** The record entry for `version`; wrapped material is wrapped (again) for it, one HSM call, no object. */
  entryFor(version: number): Promise<KeyVersionRecord>;
  /** Zeroes the in-memory secret of wrapped material; call once the version is committed or given up. */
  release(): void;
}

/**
 * Everything that differs between protections, in one place: how a version's material is made,
 * loaded into a KeyMaterial, and destroyed. Chosen by `schemeOf(record.protection)`; nothing else
 * in keys/ asks which protection a key has.
 */
export interface ProtectionScheme {
  /** Makes the material for one new version; `version` is the one expected. */
  prepare(custody: Custody, record: Pick<KeyRecord, 'id' | 'type'>, version: number): Promise<PendingVersion>;
  /** A committed version's material, ready for use. */
  load(custody: Custody, record: Pick<KeyRecord, 'id' | 'name' | 'type'>, version: KeyVersionRecord): Promise<KeyMaterial>;
  /** Removes what versions that will not be (or are no longer) recorded left outside their records. */
  destroy(custody: Custody, record: Pick<KeyRecord, 'type'>, versions: readonly KeyVersionRecord[]): Promise<void>;
}

const SCHEMES: Record<Protection, ProtectionScheme> = Object.assign(Object.create(null) as Record<Protection, ProtectionScheme>, {
  hsm: hsmProtection,
  wrapped: wrappedProtection,
} satisfies Record<Protection, ProtectionScheme>);

export function schemeOf(protection: Protection): ProtectionScheme {
  const scheme = SCHEMES[protection];
  if (!scheme) throw new KeyholdError('ERR_NOT_SUPPORTED', `unknown protection ${String(protection)}`);
  return scheme;
}
