/**
 * Verifying the audit chains in PostgreSQL's `audit` table, with the same rules as the files
 * (chain-check.ts): each chain on its own (one per writer process), its entries read in seq order
 * in keyset pages, inside one REPEATABLE READ transaction so the chains are judged as of one moment.
 */
import type pg from 'pg';
import { ChainVerifier, type ChainAnchor } from './chain-check.js';
import type { KeyObject } from 'node:crypto';

export type ChainResult =
  | { chain: string; ok: true; entries: number; lastHash: string; checkpoints: number; lastCheckpoint?: { seq: number; headSeq: number; signedAt: string }; unsignedEntries: number }
  | { chain: string; ok: false; entries: number; badSeq: number; reason: string; truncated?: boolean };

export interface TableVerifyResult {
  ok: boolean;
  chains: ChainResult[];
  /** Set when an anchor (--checkpoint) names a chain the table does not hold. */
  missingChain?: string;
}

const PAGE = 1000;

async function verifyChain(client: pg.ClientBase, chain: string, publicKey: KeyObject, anchor: ChainAnchor | undefined): Promise<ChainResult> {
  const verifier = new ChainVerifier({ publicKey, chain, ...(anchor ? { anchor } : {}) });
  const fail = (reason: string, truncated = false): ChainResult => ({ chain, ok: false, entries: verifier.entries, badSeq: verifier.entries + 1, reason, ...(truncated ? { truncated } : {}) });
  let after = 0;
  for (;;) {
    const { rows } = await client.query<{ seq: string; entry: string }>('SELECT seq, entry FROM audit WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3', [chain, after, PAGE]);
    for (const row of rows) {
      // The row's seq must be the entry's: a row moved or renumbered is caught here or by the chain.
      if (Number(row.seq) !== verifier.entries + 1) return fail(`row seq ${row.seq} follows seq ${verifier.entries}: an entry is missing`);
      const problem = verifier.check(Buffer.from(row.entry, 'utf8'));
      if (problem !== undefined) return fail(problem);
    }
    if (rows.length < PAGE) break;
    after = Number((rows[rows.length - 1] as { seq: string }).seq);
  }
  const end = verifier.finish();
  if (end) return fail(end.reason, end.truncated === true);
  const cp = verifier.lastCheckpoint;
  return {
    chain, ok: true, entries: verifier.entries, lastHash: verifier.lastHash, checkpoints: verifier.checkpoints, unsignedEntries: verifier.unsignedEntries,
    ...(cp ? { lastCheckpoint: { seq: cp.entrySeq, headSeq: cp.headSeq, signedAt: cp.signedAt } } : {}),
  };
}

/** Verifies every chain in the table; an anchor applies to the chain it names, which must be there. */
export async function verifyAuditTable(client: pg.ClientBase, publicKey: KeyObject, anchor?: ChainAnchor & { chain: string }): Promise<TableVerifyResult> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const chains = (await client.query<{ chain: string }>('SELECT DISTINCT chain FROM audit ORDER BY chain')).rows.map((r) => r.chain);
    const results: ChainResult[] = [];
    for (const chain of chains) results.push(await verifyChain(client, chain, publicKey, anchor?.chain === chain ? anchor : undefined));
    const missingChain = anchor !== undefined && !chains.includes(anchor.chain) ? anchor.chain : undefined;
    return { ok: results.every((r) => r.ok) && missingChain === undefined, chains: results, ...(missingChain ? { missingChain } : {}) };
  } finally {
    await client.query('ROLLBACK');
  }
}
