/**
 * Which keyhold tokens were issued to which pod: `<pod uid>/<token id>` in the pod-token view
 * (MOUNTS.podTokens, shared with the token store, which deletes an entry with its token),
 * written in the same commit as the token (token-issue.ts), so there is never a pod-bound token
 * its pod's deletion cannot find.
 */
import type { BarrierView, ViewWrite } from '../../barrier/view.js';
import type { TokenStore } from '../tokens.js';

const entryKey = (podUid: string, tokenId = '') => `${podUid}/${tokenId}`;
/**
 * A pod whose newest entry is younger than this is left alone by a re-list: a login may have
 * found it by a live GET (or on another replica) before this watch's list shows it. Its deletion
 * event still revokes it, and a later re-list catches any that slip through.
 */
const FRESH_ENTRY_MS = 30_000;

export class PodTokenIndex {
  constructor(private readonly view: Pick<BarrierView, 'list' | 'delete' | 'write' | 'get'>, private readonly tokens: Pick<TokenStore, 'revoke'>) {}

  /** The index entry of a token issued to a pod, for the token's own commit. */
  entry(podUid: string, tokenId: string, issuedAt: string): ViewWrite {
    return this.view.write(entryKey(podUid, tokenId), { issuedAt });
  }

  /** Revokes every token issued to the pod; returns how many entries there were. */
  async revokePod(podUid: string): Promise<number> {
    const prefix = entryKey(podUid);
    const ids = (await this.view.list(prefix)).map((key) => key.slice(prefix.length));
    // Each revocation deletes the token's tree and its pod index entry (written with the token) in
    // one commit. An entry whose token is already gone (left by an older version) is deleted alone.
    for (const id of ids) if ((await this.tokens.revoke(id)) === 0) await this.view.delete(entryKey(podUid, id));
    return ids.length;
  }

  /** Revokes the tokens of every indexed pod not in `live` (deletions missed while the watch was down). */
  async revokeAllBut(live: ReadonlySet<string>): Promise<void> {
    const listedAt = Date.now();
    const indexed = new Set((await this.view.list()).map((key) => key.split('/')[0] as string));
    for (const uid of indexed) {
      if (live.has(uid) || (await this.#newestIssue(uid)) > listedAt - FRESH_ENTRY_MS) continue;
      await this.revokePod(uid);
    }
  }

  async #newestIssue(podUid: string): Promise<number> {
    let newest = 0;
    for (const key of await this.view.list(entryKey(podUid))) {
      const entry = await this.view.get<{ issuedAt?: string }>(key);
      newest = Math.max(newest, Date.parse(entry?.issuedAt ?? '') || 0);
    }
    return newest;
  }
}
