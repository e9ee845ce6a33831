/**
 * The latest entries of the audit table across its chains (one per writer process), for the
 * console's audit page, newest last.
 *
 * The table has no column that orders entries across chains, and none is added: an index on the
 * entry time would cost every audited write an extra index insert, for a page an operator opens
 * now and then. Instead, bounded reads on the primary key (chain, seq):
 *  1. each chain's last entry, found by a skip scan over the chains (one index probe per chain,
 *     however long the chains are);
 *  2. the chains ordered by the time of their last entry (one whose last row is not an entry
 *     first); the last `limit` entries of each, most recent chain first, until the next chain's
 *     last entry is older than the `limit`-th newest entry gathered so far (its entries cannot be
 *     among the latest), at most MAX_CHAINS chains.
 * Entries within a chain have non-decreasing times (one writer), so that stop is exact unless a
 * writer's clock stepped back. Read: one row per chain, plus at most `limit` rows of each chain read.
 */
import type pg from 'pg';
import { entryShapeProblem } from './entry.js';

/** An entry as the table holds it, parsed; `chain` and `seq` are the row's (where it sits, whatever it says). */
export type RecentEntry = Record<string, unknown> & { chain: string; seq: number; time: string };

export interface RecentEntries {
  entries: RecentEntry[];
  /** Rows read that are not an entry (not JSON, or not an entry's shape): counted, not hidden. */
  unreadable: number;
  /** Chains in the table. */
  chains: number;
}

/** The chains whose tails are read at most: live replicas are a handful; a crash loop makes many short chains. */
export const MAX_CHAINS = 32;

/** Sorts after every ISO time. */
const UNREADABLE = '\uffff';

/** Each chain and its last row: a skip scan over the primary key (one probe per chain). */
export const CHAIN_TAILS = `
  WITH RECURSIVE chains(chain) AS (
    SELECT min(chain) FROM audit
    UNION ALL
    SELECT (SELECT min(a.chain) FROM audit a WHERE a.chain > c.chain) FROM chains c WHERE c.chain IS NOT NULL
  )
  SELECT c.chain, t.seq, t.entry FROM chains c
  CROSS JOIN LATERAL (SELECT seq, entry FROM audit a WHERE a.chain = c.chain ORDER BY a.seq DESC LIMIT 1) t`;

export const CHAIN_TAIL = 'SELECT seq, entry FROM audit WHERE chain = $1 ORDER BY seq DESC LIMIT $2';

/** The entry of a row, if it has an entry's shape (what the wire schema serialises); tampered content still shows. */
function parse(chain: string, seq: number, text: string): RecentEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (entryShapeProblem(value, true) !== undefined) return undefined;
  return { ...(value as Record<string, unknown>), chain, seq } as RecentEntry;
}

/** Oldest first: by time, then chain and seq (ISO times of one format compare as text). */
function older(a: RecentEntry, b: RecentEntry): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.chain !== b.chain) return a.chain < b.chain ? -1 : 1;
  return a.seq - b.seq;
}

export async function recentAuditEntries(db: Pick<pg.Pool, 'query'>, limit: number): Promise<RecentEntries> {
  const tails = (await db.query<{ chain: string; seq: string; entry: string }>(CHAIN_TAILS)).rows
    // A chain whose last row is not an entry is read first: what it holds is what the page must show.
    .map((r) => ({ chain: r.chain, time: parse(r.chain, Number(r.seq), r.entry)?.time ?? UNREADABLE }))
    .sort((a, b) => (a.time === b.time ? 0 : a.time < b.time ? 1 : -1));
  let gathered: RecentEntry[] = [];
  let unreadable = 0;
  for (const tail of tails.slice(0, MAX_CHAINS)) {
    const cutoff = gathered.length >= limit ? (gathered[gathered.length - limit] as RecentEntry).time : undefined;
    if (cutoff !== undefined && tail.time < cutoff) break;
    for (const row of (await db.query<{ seq: string; entry: string }>(CHAIN_TAIL, [tail.chain, limit])).rows) {
      const entry = parse(tail.chain, Number(row.seq), row.entry);
      if (entry) gathered.push(entry);
      else unreadable++;
    }
    gathered = gathered.sort(older).slice(-limit);
  }
  return { entries: gathered, unreadable, chains: tails.length };
}
