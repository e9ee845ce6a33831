import { randomBytes } from 'node:crypto';
import { KeyholdError } from '../errors.js';
import type { KeysContext } from './context.js';
import { createVersionMaterial, destroyVersionMaterial, prepareVersion } from './new-version.js';
import { KEY_NAME_PATTERN, type KeyRecord, type KeyType, type KeyVersionRecord, type Protection } from './types.js';

export interface CreateKeyInput {
  name: string;
  type: KeyType;
  protection: Protection;
  deletionAllowed?: boolean;
}

/** Creates a key with version 1. The material is made first; if the name turns out to be taken, it is destroyed again. */
const KEY_NAME = new RegExp(KEY_NAME_PATTERN);

export async function createKey(ctx: KeysContext, input: CreateKeyInput): Promise<KeyRecord> {
  if (!KEY_NAME.test(input.name)) throw new KeyholdError('ERR_BAD_REQUEST', `key name "${input.name}" must match ${KEY_NAME_PATTERN}`);
  const id = randomBytes(12).toString('hex');
  const base = { id, type: input.type, protection: input.protection };
  const existing = await ctx.records.get(input.name).catch(() => null);
  if (existing) throw new KeyholdError('ERR_KEY_EXISTS', `key "${input.name}" already exists`);
  const v1 = await createVersionMaterial(ctx, base, 1);
  const record: KeyRecord = {
    name: input.name,
    ...base,
    createdAt: v1.createdAt,
    latestVersion: 1,
    minDecryptionVersion: 1,
    deletionAllowed: input.deletionAllowed ?? false,
    disabled: false,
    versions: { '1': v1 },
  };
  try {
    return await ctx.records.update(input.name, (current) => {
      if (current) throw new KeyholdError('ERR_KEY_EXISTS', `key "${input.name}" already exists`);
      return { next: record, result: record };
    });
  } catch (err) {
    await destroyVersionMaterial(ctx, base, [v1]).catch(() => { /* the record write's failure is what the caller must see */ });
    throw err;
  }
}

/** Thrown inside a record update when wrapped material must be wrapped again for another version number. */
class VersionTaken extends Error {
  constructor(readonly next: number) {
    super('version taken by a concurrent rotation');
  }
}

/** Bounds the re-wraps of one rotation; each is caused by another rotation committing first. */
const MAX_ROTATION_ATTEMPTS = 64;

/**
 * Adds version latest+1; new encryptions use it at once, older versions keep decrypting.
 * Concurrent rotations each get their own version: the material is made once, and only the record
 * commit is retried (compare-and-set) with the next free number. Material that is never committed
 * is destroyed.
 */
export async function rotateKey(ctx: KeysContext, name: string): Promise<KeyRecord> {
  const current = await ctx.records.get(name);
  if (current.disabled) throw new KeyholdError('ERR_KEY_DISABLED', `key "${name}" is disabled`);
  let version = current.latestVersion + 1;
  const pending = await prepareVersion(ctx, current, version);
  let entry: KeyVersionRecord | undefined;
  try {
    for (let attempt = 0; attempt < MAX_ROTATION_ATTEMPTS; attempt++) {
      const candidate = await pending.entryFor(version);
      entry = candidate;
      try {
        return await ctx.records.update(name, (latest) => {
          if (!latest || latest.id !== current.id) throw new KeyholdError('ERR_KEY_NOT_FOUND', `key "${name}" does not exist`);
          if (latest.disabled) throw new KeyholdError('ERR_KEY_DISABLED', `key "${name}" is disabled`);
          const next = latest.latestVersion + 1;
          if (next !== candidate.version && pending.boundToVersion) throw new VersionTaken(next);
          const added = next === candidate.version ? candidate : { ...candidate, version: next };
          const record: KeyRecord = { ...latest, latestVersion: next, versions: { ...latest.versions, [String(next)]: added } };
          return { next: record, result: record };
        });
      } catch (err) {
        if (!(err instanceof VersionTaken)) throw err;
        version = err.next;
      }
    }
    throw new KeyholdError('ERR_CONFLICT', `key "${name}" is being rotated by too many concurrent requests; retry`);
  } catch (err) {
    if (entry) await destroyVersionMaterial(ctx, current, [entry]).catch(() => { /* the record write's failure is what the caller must see */ });
    throw err;
  } finally {
    pending.release();
  }
}

export interface KeyConfigInput {
  minDecryptionVersion?: number;
  deletionAllowed?: boolean;
  disabled?: boolean;
}

export async function configureKey(ctx: KeysContext, name: string, input: KeyConfigInput): Promise<KeyRecord> {
  const result = await ctx.records.update(name, (current) => {
    if (!current) throw new KeyholdError('ERR_KEY_NOT_FOUND', `key "${name}" does not exist`);
    const next = { ...current };
    if (input.minDecryptionVersion !== undefined) {
      if (input.minDecryptionVersion < 1 || input.minDecryptionVersion > current.latestVersion) {
        throw new KeyholdError('ERR_BAD_REQUEST', `min_decryption_version must be between 1 and the latest version (${current.latestVersion})`);
      }
      next.minDecryptionVersion = input.minDecryptionVersion;
    }
    if (input.deletionAllowed !== undefined) next.deletionAllowed = input.deletionAllowed;
    if (input.disabled !== undefined) next.disabled = input.disabled;
    return { next, result: next };
  });
  ctx.material.forget(result.id);
  return result;
}

/** Deletes the key and destroys its HSM objects, only when the key allows deletion. */
export async function deleteKey(ctx: KeysContext, name: string): Promise<void> {
  const removed = await ctx.records.update(name, (current) => {
    if (!current) throw new KeyholdError('ERR_KEY_NOT_FOUND', `key "${name}" does not exist`);
    if (!current.deletionAllowed) throw new KeyholdError('ERR_KEY_DELETION_NOT_ALLOWED', `key "${name}" does not allow deletion; set deletion_allowed first`);
    return { next: null, result: current };
  });
  ctx.material.forget(removed.id);
  await destroyVersionMaterial(ctx, removed, Object.values(removed.versions));
}
