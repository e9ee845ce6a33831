import { KeyholdError } from '../errors.js';
import type { Hsm } from '../hsm/types.js';
import type { KeyMaterial } from './key-material.js';
import { schemeOf, type Custody } from './protection/scheme.js';
import type { MaterialWrapper } from './protection/wrapper.js';
import type { KeyRecord } from './types.js';

interface Entry {
  readonly material: KeyMaterial;
  readonly expires: number;
}

/**
 * Loaded key versions, each for at most `ttlMs`, so a busy wrapped key costs one HSM unwrap per TTL
 * rather than per request. Every material that leaves the cache (expiry, `forget`, a full cache,
 * `clear`) is closed: unwrapped secrets are released, and the material refuses further use.
 */
export class MaterialCache {
  /** Key id → version → entry: a hit builds no lookup string. */
  private readonly keys = new Map<string, Map<number, Entry>>();
  private count = 0;
  private readonly custody: Custody;
  /** Drops expired entries even when no request comes, so "at most ttlMs" holds for idle keys too. */
  private readonly sweeper: NodeJS.Timeout;

  constructor(hsm: Hsm, wrapper: MaterialWrapper, private readonly ttlMs = 60_000, private readonly maxEntries = 10_000) {
    this.custody = { hsm, wrapper };
    this.sweeper = setInterval(() => this.dropExpired(Date.now()), Math.max(1000, ttlMs / 4));
    this.sweeper.unref();
  }

  /** Number of loaded versions held. */
  get size(): number {
    return this.count;
  }

  /**
   * The loaded material of a version, or undefined: synchronous, so an operation on a cached
   * version awaits nothing here. Use it in the same turn (in-memory material runs within the call).
   */
  cached(record: Pick<KeyRecord, 'id'>, version: number): KeyMaterial | undefined {
    const entry = this.keys.get(record.id)?.get(version);
    return entry !== undefined && entry.expires > Date.now() ? entry.material : undefined;
  }

  /** The material of a version, loaded when not cached (one HSM unwrap for wrapped material). */
  async get(record: KeyRecord, version: number): Promise<KeyMaterial> {
    const hit = this.cached(record, version);
    if (hit) return hit;
    const versionRecord = record.versions[String(version)];
    if (!versionRecord) throw new KeyholdError('ERR_KEY_VERSION_NOT_FOUND', `key "${record.name}" has no version ${version}`);
    const material = await schemeOf(record.protection).load(this.custody, record, versionRecord);
    // A concurrent load of the same version finished first: keep one copy in memory, not two.
    const raced = this.cached(record, version);
    if (raced) {
      material.close();
      return raced;
    }
    this.insert(record.id, version, material);
    return material;
  }

  /** Forgets every version of a key (reconfigured, deleted). */
  forget(keyId: string): void {
    const versions = this.keys.get(keyId);
    if (!versions) return;
    this.keys.delete(keyId);
    this.count -= versions.size;
    for (const entry of versions.values()) entry.material.close();
  }

  /** Forgets everything and stops the sweeper (runtime close). */
  clear(): void {
    clearInterval(this.sweeper);
    for (const keyId of [...this.keys.keys()]) this.forget(keyId);
  }

  private insert(keyId: string, version: number, material: KeyMaterial): void {
    let versions = this.keys.get(keyId);
    const previous = versions?.get(version);
    if (previous) {
      // Expired, not yet swept.
      versions?.delete(version);
      this.count--;
      previous.material.close();
    }
    if (this.count >= this.maxEntries) this.makeRoom();
    versions = this.keys.get(keyId);
    if (!versions) {
      versions = new Map();
      this.keys.set(keyId, versions);
    }
    versions.set(version, { material, expires: Date.now() + this.ttlMs });
    this.count++;
  }

  /** Expired entries first; then whole keys, the longest held first. */
  private makeRoom(): void {
    this.dropExpired(Date.now());
    for (const keyId of this.keys.keys()) {
      if (this.count < this.maxEntries) return;
      this.forget(keyId);
    }
  }

  private dropExpired(now: number): void {
    for (const [keyId, versions] of this.keys) {
      for (const [version, entry] of versions) {
        if (entry.expires > now) continue;
        versions.delete(version);
        this.count--;
        entry.material.close();
      }
      if (versions.size === 0) this.keys.delete(keyId);
    }
  }
}
