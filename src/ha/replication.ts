/**
 * What makes this process one replica among several: who leads (and so runs the background
 * jobs). A store of one process (SQLite) leads alone; a shared PostgreSQL store elects its leader
 * with an advisory lock (leader.ts). Cache invalidation is the store's own feed (Storage.changes).
 */
import type { Storage } from '../storage/types.js';
import type { NewPgClient } from '../storage/pg-session.js';
import { BackgroundJobs } from './jobs.js';
import { AdvisoryLockLeader, SoleLeader, type Leadership } from './leader.js';

export interface Replication {
  leadership: Leadership;
  jobs: BackgroundJobs;
  /** Stops every job and gives up leadership (another replica takes over within a second). */
  close(): Promise<void>;
}

/** A store shared between processes offers sessions of its own for the leader lock. */
interface SessionSource {
  newSessionClient: NewPgClient;
}

function sessionsOf(storage: Storage): SessionSource | undefined {
  const candidate = storage as Partial<SessionSource>;
  return typeof candidate.newSessionClient === 'function' ? (candidate as SessionSource) : undefined;
}

export async function startReplication(storage: Storage, warn: (message: string) => void): Promise<Replication> {
  const sessions = sessionsOf(storage);
  let leadership: Leadership;
  if (sessions) {
    const leader = new AdvisoryLockLeader({ newClient: sessions.newSessionClient, warn });
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
