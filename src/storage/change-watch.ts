/**
 * The interim adapter by which each domain cache follows another replica's writes, until the one
 * barrier read cache replaces them: `onPaths` is called with the logical paths (barrier paths,
 * without the storage prefix) changed under `prefix`, or 'all'. Freshness before a hit is the
 * request's business (one sync() per request, in api/auth.ts), not each cache's.
 */
import type { StorageChangeFeed } from './types.js';

/** Where the barrier keeps its records in storage (see barrier.ts). */
const BARRIER_PREFIX = 'data/';

export function watchBarrierPaths(feed: StorageChangeFeed | undefined, prefix: string, onPaths: (paths: readonly string[] | 'all') => void): void {
  if (!feed) return;
  const storagePrefix = BARRIER_PREFIX + prefix;
  feed.onChange((keys) => {
    if (keys === 'all') return onPaths('all');
    const paths: string[] = [];
    for (const key of keys) if (key.startsWith(storagePrefix)) paths.push(key.slice(BARRIER_PREFIX.length));
    if (paths.length > 0) onPaths(paths);
  });
}
