/**
 * A replica that does not lead still revokes the tokens it issued itself when its own pod watch
 * reports the pod deleted (the leader may have seen the deletion before this replica wrote the
 * pod's index entry). Real tokens in a real barrier (memory store), the watch's news through the hub.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Barrier } from '../../../../src/barrier/barrier.js';
import { MOUNTS } from '../../../../src/barrier/mounts.js';
import { isKeyholdError } from '../../../../src/errors.js';
import { OwnIssues } from '../../../../src/identity/kubernetes/own-issues.js';
import { PodEventHub } from '../../../../src/identity/kubernetes/pod-events.js';
import { PodRevoker } from '../../../../src/identity/kubernetes/pod-revoker.js';
import { PodTokenIndex } from '../../../../src/identity/kubernetes/pod-token-index.js';
import { tokenViews } from '../../../../src/identity/token-paths.js';
import { TokenStore } from '../../../../src/identity/tokens.js';
import { MemoryStorage } from '../../../../src/storage/memory.js';

describe('OwnIssues: a replica that does not lead revokes what it issued itself', () => {
  const storage = new MemoryStorage();
  after(() => storage.close());
  const barrier = new Barrier(storage, randomBytes(32));
  const tokens = new TokenStore(tokenViews(barrier));
  const index = new PodTokenIndex(barrier.view(MOUNTS.podTokens), tokens);
  const hub = new PodEventHub(() => undefined);
  const warnings: string[] = [];
  const log = { warn: (m: string) => warnings.push(m) };
  const revoker = new PodRevoker(hub, index, log);
  const own = new OwnIssues(hub, index, revoker, log);

  /** A token for the pod, as another replica (`here` false) or this one would issue it. */
  const issue = async (podUid: string, here: boolean) => {
    const { token } = await tokens.create({ policies: ['p'], ttlSeconds: 600 }, (r) => [index.entry(podUid, r.id, r.createdAt)]);
    if (here) own.issued(podUid);
    return token;
  };
  const valid = async (token: string) => tokens.lookup(token).then(() => true, (err: unknown) => {
    if (isKeyholdError(err, 'ERR_UNAUTHENTICATED')) return false;
    throw err;
  });
  /** Lets the revocation started by the event finish (it is fire-and-forget, like the watch's). */
  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('not leading: a pod this replica issued a token to is revoked when its watch reports it deleted', async () => {
    const mine = await issue('pod-mine', true);
    hub.deleted('pod-mine');
    await settle();
    assert.equal(await valid(mine), false);
  });

  it('not leading: a pod another replica issued tokens to is left to the leader', async () => {
    const theirs = await issue('pod-theirs', false);
    hub.deleted('pod-theirs');
    await settle();
    assert.equal(await valid(theirs), true);
  });

  it('leading: the revoker revokes every deleted pod\'s tokens, whoever issued them, without a warning', async () => {
    revoker.start();
    const mine = await issue('pod-mine-2', true);
    const theirs = await issue('pod-theirs-2', false);
    hub.deleted('pod-mine-2');
    hub.deleted('pod-theirs-2');
    await revoker.idle();
    await settle();
    assert.equal(await valid(mine), false);
    assert.equal(await valid(theirs), false);
    await revoker.stop();
    assert.deepEqual(warnings, []);
  });
});
