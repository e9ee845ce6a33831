/**
 * Reading a token's tree for its revocation: the token, its descendants (through the child
 * index), and every record that names one of them.
 */
import type { BarrierRead } from '../barrier/barrier.js';
import type { ViewWrite } from '../barrier/view.js';
import { childKey, childrenPrefix, expiryKey, removeOwned, type ExpiryRecord, type TokenViews } from './token-paths.js';
import type { TokenRecord } from './tokens.js';

export interface TokenTree {
  /** Token ids of the tree, root first. */
  ids: string[];
  /** The records as read (null for one already gone): the revocation commits only if none changed. */
  reads: Array<BarrierRead<TokenRecord>>;
  /** Every deletion: records, accessor, child and expiry indexes, and what was written with each token. */
  deletes: ViewWrite[];
}

/** A breadth-first read of the tree under `rootId`, one level's reads in parallel. */
export async function readTree(views: TokenViews, rootId: string): Promise<TokenTree> {
  const tree: TokenTree = { ids: [], reads: [], deletes: [] };
  const deletes = new Map<string, ViewWrite>();
  const remove = (write: ViewWrite) => deletes.set(write.path, write);
  const seen = new Set<string>();
  let level = [rootId];
  while (level.length > 0) {
    const fresh = level.filter((id) => !seen.has(id));
    for (const id of fresh) seen.add(id);
    const nodes = await Promise.all(fresh.map(async (id) => {
      const [read, children] = await Promise.all([views.tokens.read<TokenRecord>(id), views.children.list(childrenPrefix(id))]);
      const record = read.value;
      const expiry = record?.expiresAt ? await views.expiry.get<ExpiryRecord>(expiryKey(Date.parse(record.expiresAt), id)) : null;
      return { id, read, record, expiry, children: children.map((p) => p.slice(childrenPrefix(id).length)) };
    }));
    level = [];
    for (const { id, read, record, expiry, children } of nodes) {
      tree.ids.push(id);
      tree.reads.push(read);
      if (record) {
        remove(views.tokens.remove(id));
        if (record.accessor) remove(views.accessors.remove(record.accessor));
        if (record.parent) remove(views.children.remove(childKey(record.parent, id)));
        if (record.expiresAt) remove(views.expiry.remove(expiryKey(Date.parse(record.expiresAt), id)));
        for (const path of expiry?.paths ?? []) remove(removeOwned(views, path));
      }
      for (const child of children) {
        remove(views.children.remove(childKey(id, child)));
        level.push(child);
      }
    }
  }
  tree.deletes = [...deletes.values()];
  return tree;
}
