/**
 * Verifying the audit chains in PostgreSQL's `audit` table, with the same rules as the files
 * (chain-check.ts): each chain on its own (one per writer process), its entries read in seq order
 * in keyset pages, inside one REPEATABLE READ transaction so the chains are judged as of one moment.
 */
import type pg from 'pg';
import { ChainVerifier, type ChainAnchor } from './chain-check.js';
import type { AuditHead } from './entry.js';
import type { KeyObject } from 'node:crypto';

export type ChainResult =
  | { chain: string; ok: true; entries: number; lastHash: string; checkpoints: number; lastCheckpoint?: { seq: number; headSeq: number; signedAt: string }; unsignedEntries: number }
  | { chain: string; ok: false; entries: number; checkpoints: number; badSeq: number; reason: string; truncated?: boolean };

export interface TableVerifyResult {
  ok: boolean;
  chains: ChainResult[];
  /** Set when an anchor (--checkpoint) or a writer's head names a chain the table does not hold. */
  missingChain?: string;
}

export interface TableVerifyOptions {
  /**
   * The head a chain's own writer knows it committed (a running server's durable head): the chain
   * must reach it with that hash. Unlike a checkpoint it covers the entries after the last signed
   * head, which a checkpoint cannot vouch for; only the process that wrote them knows it.
   */
  head?: AuditHead & { chain: string };
}

const PAGE = 1000;
/** Entries checked between two turns of the event loop: a server verifying keeps answering. */
const YIELD_EVERY = 100;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function verifyChain(client: pg.ClientBase, chain: string, publicKey: KeyObject, anchor: ChainAnchor | undefined, head: AuditHead | undefined): Promise<ChainResult> {
  const verifier = new ChainVerifier({ publicKey, chain, ...(anchor ? { anchor } : {}) });
  const fail = (reason: string, truncated = false, badSeq = verifier.entries + 1): ChainResult => ({
    chain, ok: false, entries: verifier.entries, checkpoints: verifier.checkpoints, badSeq, reason, ...(truncated ? { truncated } : {}),
  });
  let after = 0;
  let checked = 0;
  for (;;) {
    const { rows } = await client.query<{ seq: string; entry: string }>('SELECT seq, entry FROM audit WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3', [chain, after, PAGE]);
    for (const row of rows) {
      // The row's seq must be the entry's: a row moved or renumbered is caught here or by the chain.
      if (Number(row.seq) !== verifier.entries + 1) return fail(`row seq ${row.seq} follows seq ${verifier.entries}: an entry is missing`);
      const problem = verifier.check(Buffer.from(row.entry, 'utf8'));
      if (problem !== undefined) return fail(problem);
      if (head !== undefined && verifier.entries === head.seq && verifier.lastHash !== head.hash) {
        return fail(`differs from the entry this replica committed at seq ${head.seq}: the chain was rewritten between seq ${(verifier.lastCheckpoint?.headSeq ?? 0) + 1} and ${head.seq}`, false, head.seq);
      }
      if (++checked % YIELD_EVERY === 0) await turn();
    }
    if (rows.length < PAGE) break;
    after = Number((rows[rows.length - 1] as { seq: string }).seq);
  }
  const end = verifier.finish();
  if (end) return fail(end.reason, end.truncated === true);
  if (head !== undefined && verifier.entries < head.seq) {
    return fail(`chain ends at seq ${verifier.entries}, but this replica committed up to seq ${head.seq} (truncated)`, true);
  }
  const cp = verifier.lastCheckpoint;
  return {
    chain, ok: true, entries: verifier.entries, lastHash: verifier.lastHash, checkpoints: verifier.checkpoints, unsignedEntries: verifier.unsignedEntries,
    ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, signedAt: cp.signedAt } } : {}),
  };
}

/**
 * Verifies every chain in the table; an anchor applies to the chain it names, which must be there
 * (and so must the chain of `options.head`).
 */
export async function verifyAuditTable(client: pg.ClientBase, publicKey: KeyObject, anchor?: ChainAnchor & { chain: string }, options: TableVerifyOptions = {}): Promise<TableVerifyResult> {
  const { head } = options;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const chains = (await client.query<{ chain: string }>('SELECT DISTINCT chain FROM audit ORDER BY chain')).rows.map((r) => r.chain);
    const results: ChainResult[] = [];
    for (const chain of chains) {
      results.push(await verifyChain(client, chain, publicKey, anchor?.chain === chain ? anchor : undefined, head?.chain === chain && head.seq > 0 ? head : undefined));
    }
    const missingChain = [anchor?.chain, head?.chain].find((c) => c !== undefined && !chains.includes(c));
    return { ok: results.every((r) => r.ok) && missingChain === undefined, chains: results, ...(missingChain ? { missingChain } : {}) };
  } finally {
    await client.query('ROLLBACK');
  }
}
