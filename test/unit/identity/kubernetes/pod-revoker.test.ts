/**
 * The pod revoker as a unit the leader starts and stops: real tokens in a real barrier on SQLite,
 * the pod watch's news delivered through the same hub the cluster client feeds.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Barrier } from '../../../../src/barrier/barrier.js';
import { isKeyholdError } from '../../../../src/errors.js';
import { PodEventHub } from '../../../../src/identity/kubernetes/pod-events.js';
import { PodRevoker } from '../../../../src/identity/kubernetes/pod-revoker.js';
import { PodTokenIndex } from '../../../../src/identity/kubernetes/pod-token-index.js';
import { MOUNTS } from '../../../../src/barrier/mounts.js';
import { tokenViews } from '../../../../src/identity/token-paths.js';
import { TokenStore } from '../../../../src/identity/tokens.js';
import { SqliteStorage } from '../../../../src/storage/sqlite.js';
import { tempDir } from '../../../helpers/server.js';

describe('PodRevoker: revokes deleted pods\' tokens while started, and only then', () => {
  const storage = SqliteStorage.open(join(tempDir('keyhold-pod-revoker-'), 'store.db'));
  const barrier = new Barrier(storage, randomBytes(32));
  after(() => storage.close());
  const tokens = new TokenStore(tokenViews(barrier));
  const index = new PodTokenIndex(barrier.view(MOUNTS.podTokens), tokens);
  let live: Set<string> | undefined;
  const hub = new PodEventHub(() => live);
  const warnings: string[] = [];
  const revoker = new PodRevoker(hub, index, { warn: (m) => warnings.push(m) });

  /**
   * `ageMs`: how long ago the index entry says the token was issued. A re-list leaves entries younger
   * than 30 s alone (a login may have found the pod before this watch's list did), so by default
   * these are a minute old.
   */
  const issue = async (podUid: string, ageMs = 60_000) => (await tokens.create({ policies: ['p'], ttlSeconds: 600 }, (r) => [index.entry(podUid, r.id, new Date(Date.parse(r.createdAt) - ageMs).toISOString())])).token;
  const valid = async (token: string) => tokens.lookup(token).then(() => true, (err: unknown) => {
    if (isKeyholdError(err, 'ERR_UNAUTHENTICATED')) return false;
    throw err;
  });

  it('stopped (a replica that is not the leader): a deletion revokes nothing', async () => {
    const token = await issue('pod-a');
    hub.deleted('pod-a');
    await revoker.idle();
    assert.equal(await valid(token), true);
  });

  it('started while the watch is synced: at once revokes the tokens of indexed pods the watch no longer holds, and no other', async () => {
    const kept = await issue('pod-b');
    const orphaned = await issue('pod-a');
    live = new Set(['pod-b']);
    revoker.start();
    assert.equal(revoker.running, true);
    await revoker.idle();
    assert.equal(await valid(orphaned), false);
    assert.equal(await valid(kept), true);
    assert.deepEqual(await barrier.list('auth/kubernetes/pod-tokens/pod-a/'), [], 'the index entries went with the tokens');
  });

  it('started: a deletion revokes that pod\'s tokens; a re-list revokes those of pods it no longer has', async () => {
    const c = await issue('pod-c');
    const d = await issue('pod-d');
    const b = (await barrier.list('auth/kubernetes/pod-tokens/pod-b/')).length;
    assert.equal(b, 1);
    hub.deleted('pod-c');
    await revoker.idle();
    assert.equal(await valid(c), false);
    assert.equal(await valid(d), true);
    hub.relisted(new Set(['pod-b']));
    await revoker.idle();
    assert.equal(await valid(d), false);
    assert.equal((await barrier.list('auth/kubernetes/pod-tokens/pod-b/')).length, 1);
  });

  it('a re-list leaves a pod it does not hold alone while its newest token is younger than 30 s (a login found it first); its deletion still revokes', async () => {
    const fresh = await issue('pod-fresh', 0);
    const old = await issue('pod-old');
    hub.relisted(new Set(['pod-b']));
    await revoker.idle();
    assert.equal(await valid(fresh), true, 'issued a moment ago, for a pod this list has not caught up with');
    assert.equal(await valid(old), false);
    hub.deleted('pod-fresh');
    await revoker.idle();
    assert.equal(await valid(fresh), false);
  });

  it('stopped again: deletions are left for the next leader, whose start finds them', async () => {
    await revoker.stop();
    assert.equal(revoker.running, false);
    const e = await issue('pod-e');
    live = new Set(['pod-b', 'pod-e']);
    hub.deleted('pod-e');
    await revoker.idle();
    assert.equal(await valid(e), true);
    live = new Set(['pod-b']);
    const next = new PodRevoker(hub, index, { warn: (m) => warnings.push(m) });
    next.start();
    await next.stop();
    assert.equal(await valid(e), false);
    assert.deepEqual(warnings, []);
  });

  it('started while the watch is not synced: catches up on the deletions the watch reported lately; the rest waits for the watch to list', async () => {
    const f = await issue('pod-f');
    const g = await issue('pod-g');
    hub.deleted('pod-g');
    live = undefined;
    revoker.start();
    await revoker.idle();
    assert.equal(await valid(g), false);
    assert.equal(await valid(f), true);
    hub.relisted(new Set(['pod-b']));
    await revoker.stop();
    assert.equal(await valid(f), false);
  });
});
