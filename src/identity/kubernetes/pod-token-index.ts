/**
 * Which keyhold tokens were issued to which pod: `auth/kubernetes/pod-tokens/<pod uid>/<token id>`,
 * written in the same commit as the token (token-issue.ts), so there is never a pod-bound token
 * its pod's deletion cannot find.
 */
import type { Barrier, BarrierWrite } from '../../barrier/barrier.js';
import type { TokenStore } from '../tokens.js';

const PREFIX = 'auth/kubernetes/pod-tokens/';
const entryPath = (podUid: string, tokenId = '') => `${PREFIX}${podUid}/${tokenId}`;

export class PodTokenIndex {
  constructor(private readonly barrier: Pick<Barrier, 'list' | 'delete'>, private readonly tokens: Pick<TokenStore, 'revoke'>) {}

  /** The index entry of a token issued to a pod, for the token's own commit. */
  entry(podUid: string, tokenId: string, issuedAt: string): BarrierWrite {
    return { path: entryPath(podUid, tokenId), value: { issuedAt } };
  }

  /** Revokes every token issued to the pod; returns how many entries there were. */
  async revokePod(podUid: string): Promise<number> {
    const prefix = entryPath(podUid);
    const ids = (await this.barrier.list(prefix)).map((path) => path.slice(prefix.length));
    // Each revocation deletes the token's tree and its pod index entry (written with the token) in
    // one commit. An entry whose token is already gone (left by an older version) is deleted alone.
    for (const id of ids) if ((await this.tokens.revoke(id)) === 0) await this.barrier.delete(entryPath(podUid, id));
    return ids.length;
  }

  /** Revokes the tokens of every indexed pod not in `live` (deletions missed while the watch was down). */
  async revokeAllBut(live: ReadonlySet<string>): Promise<void> {
    const indexed = new Set((await this.barrier.list(PREFIX)).map((path) => path.slice(PREFIX.length).split('/')[0] as string));
    for (const uid of indexed) if (!live.has(uid)) await this.revokePod(uid);
  }
}
