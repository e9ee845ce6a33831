/**
 * Reading a token's tree for its revocation: the token, its descendants (through the child
 * index), and every record that names one of them.
 */
import type { Barrier, BarrierRead } from '../barrier/barrier.js';
import { accessorPath, childPath, childrenPrefix, expiryPath, tokenPath, type ExpiryRecord } from './token-paths.js';
import type { TokenRecord } from './tokens.js';

export interface TokenTree {
  /** Token ids of the tree, root first. */
  ids: string[];
  /** The records as read (null for one already gone): the revocation commits only if none changed. */
  reads: Array<BarrierRead<TokenRecord>>;
  /** Every path to delete: records, accessor, child and expiry indexes, and what was written with each token. */
  deletes: string[];
}

/** A breadth-first read of the tree under `rootId`, one level's reads in parallel. */
export async function readTree(barrier: Barrier, rootId: string): Promise<TokenTree> {
  const tree: TokenTree = { ids: [], reads: [], deletes: [] };
  const deletes = new Set<string>();
  const seen = new Set<string>();
  let level = [rootId];
  while (level.length > 0) {
    const fresh = level.filter((id) => !seen.has(id));
    for (const id of fresh) seen.add(id);
    const nodes = await Promise.all(fresh.map(async (id) => {
      const [read, children] = await Promise.all([barrier.read<TokenRecord>(tokenPath(id)), barrier.list(childrenPrefix(id))]);
      const record = read.value;
      const expiry = record?.expiresAt ? await barrier.getJson<ExpiryRecord>(expiryPath(Date.parse(record.expiresAt), id)) : null;
      return { id, read, record, expiry, children: children.map((p) => p.slice(childrenPrefix(id).length)) };
    }));
    level = [];
    for (const { id, read, record, expiry, children } of nodes) {
      tree.ids.push(id);
      tree.reads.push(read);
      if (record) {
        deletes.add(tokenPath(id));
        if (record.accessor) deletes.add(accessorPath(record.accessor));
        if (record.parent) deletes.add(childPath(record.parent, id));
        if (record.expiresAt) deletes.add(expiryPath(Date.parse(record.expiresAt), id));
        for (const path of expiry?.paths ?? []) deletes.add(path);
      }
      for (const child of children) {
        deletes.add(childPath(id, child));
        level.push(child);
      }
    }
  }
  tree.deletes = [...deletes];
  return tree;
}
