/**
 * What makes this process one replica among several: who leads (and so runs the background
 * jobs). A store of one process (SQLite) leads alone; a shared PostgreSQL store elects its leader
 * with an advisory lock (leader.ts). Cache invalidation is the store's own feed (Storage.changes).
 */
import type { NewPgClient } from '../storage/pg-session.js';
import { BackgroundJobs } from './jobs.js';
import { AdvisoryLockLeader, SoleLeader, type Leadership } from './leader.js';

export interface Replication {
  leadership: Leadership;
  jobs: BackgroundJobs;
  /** Stops every job and gives up leadership (another replica takes over within a second). */
  close(): Promise<void>;
}

/** `newSessionClient`: the shared store's sessions (shared-storage.ts); none for a store of one process. */
export async function startReplication(newSessionClient: NewPgClient | undefined, warn: (message: string) => void): Promise<Replication> {
  let leadership: Leadership;
  if (newSessionClient) {
    const leader = new AdvisoryLockLeader({ newClient: newSessionClient, warn });
    // Not fatal when it fails: this replica serves, and keeps asking for the lock.
    await leader.start().catch((err: unknown) => warn(`leader election: ${(err as Error).message}`));
    leadership = leader;
  } else {
    leadership = new SoleLeader();
  }
  const jobs = new BackgroundJobs(leadership, warn);
  return {
    leadership,
    jobs,
    async close() {
      jobs.stop();
      await leadership.close();
    },
  };
}
