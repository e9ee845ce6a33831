import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Barrier } from '../../../src/barrier/barrier.js';
import { configureMetadata, listSecrets, readMetadata } from '../../../src/secrets/metadata.js';
import { getSecret } from '../../../src/secrets/read.js';
import { SecretStore } from '../../../src/secrets/store.js';
import { deleteSecretCompletely, deleteVersions, destroyVersions, undeleteVersions } from '../../../src/secrets/versions.js';
import { putSecret } from '../../../src/secrets/write.js';
import { SqliteStorage } from '../../../src/storage/sqlite.js';
import { code } from './support.js';
import { tempDir } from '../../helpers/temp.js';

// Secrets sit on the barrier alone; a random root key stands in for an unsealed one (no HSM needed).
const dir = tempDir('keyhold-domain-secrets-');
let storage: SqliteStorage;
let barrier: Barrier;
let store: SecretStore;

before(() => {
  storage = SqliteStorage.open(path.join(dir, 'keyhold.db'));
  barrier = new Barrier(storage, randomBytes(32));
  store = new SecretStore(barrier);
});
after(async () => {
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const dataPath = (p: string, v: number): string => `secrets/data/${p}/${v}`;
const metaPath = (p: string): string => `secrets/meta/${p}`;

/** A second store over the same barrier: no cached metadata, as after a restart. */
const freshStore = (): SecretStore => new SecretStore(barrier);

describe('secret versions', () => {
  it('writes versions 1..n and reads each one back; the default read is the latest', async () => {
    const p = 'app/versions';
    for (let v = 1; v <= 5; v++) {
      const written = await putSecret(store, p, { n: v, password: `pw-${v}` });
      assert.equal(written.version, v);
      assert.ok(!Number.isNaN(Date.parse(written.created_at)));
    }
    for (let v = 1; v <= 5; v++) {
      const read = await getSecret(store, p, v);
      assert.deepEqual(read.data, { n: v, password: `pw-${v}` });
      assert.equal(read.version, v);
    }
    const latest = await getSecret(store, p);
    assert.equal(latest.version, 5);
    assert.deepEqual(latest.data, { n: 5, password: 'pw-5' });
    assert.deepEqual(await getSecret(freshStore(), p), latest);

    const meta = await readMetadata(store, p);
    assert.equal(meta.current_version, 5);
    assert.equal(meta.oldest_version, 1);
    assert.equal(meta.max_versions, 10);
    assert.equal(meta.cas_required, false);
    assert.deepEqual(Object.keys(meta.versions).sort(), ['1', '2', '3', '4', '5']);
  });

  it('keeps arbitrary JSON data intact', async () => {
    const data = { s: 'ünïcødé ✓', n: 1.5, b: false, nil: null, arr: [1, 'two', { three: 3 }], nested: { deep: { deeper: 'x' } }, empty: '' };
    await putSecret(store, 'app/json', data);
    assert.deepEqual((await getSecret(freshStore(), 'app/json')).data, data);
  });

  it('refuses unknown secrets and versions with ERR_SECRET_NOT_FOUND', async () => {
    await assert.rejects(getSecret(store, 'app/missing'), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(readMetadata(store, 'app/missing'), code('ERR_SECRET_NOT_FOUND'));
    await putSecret(store, 'app/one', { a: 1 });
    await assert.rejects(getSecret(store, 'app/one', 2), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(getSecret(store, 'app/one', 0), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(configureMetadata(store, 'app/missing', { maxVersions: 3 }), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(deleteVersions(store, 'app/missing'), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(destroyVersions(store, 'app/one', [7]), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(deleteSecretCompletely(store, 'app/missing'), code('ERR_SECRET_NOT_FOUND'));
  });

  it('refuses invalid secret paths with ERR_BAD_REQUEST', async () => {
    for (const bad of ['', 'a//b', '../etc', 'a/../b', '/a', 'a/', 'a b', 'x'.repeat(600), 'a/./b']) {
      await assert.rejects(putSecret(store, bad, { a: 1 }), code('ERR_BAD_REQUEST'), JSON.stringify(bad.slice(0, 20)));
      await assert.rejects(getSecret(store, bad), code('ERR_BAD_REQUEST'), JSON.stringify(bad.slice(0, 20)));
    }
  });
});

describe('check-and-set', () => {
  it('cas=0 creates only when absent; cas=N must match the current version', async () => {
    const p = 'cas/basic';
    assert.equal((await putSecret(store, p, { v: 1 }, 0)).version, 1);
    await assert.rejects(putSecret(store, p, { v: 'again' }, 0), (err: unknown) => {
      code('ERR_CAS_MISMATCH')(err);
      assert.deepEqual((err as { details?: unknown }).details, { current_version: 1 });
      return true;
    });
    assert.equal((await putSecret(store, p, { v: 2 }, 1)).version, 2);
    await assert.rejects(putSecret(store, p, { v: 'stale' }, 1), code('ERR_CAS_MISMATCH'));
    await assert.rejects(putSecret(store, p, { v: 'future' }, 3), code('ERR_CAS_MISMATCH'));
    assert.equal((await putSecret(store, p, { v: 3 }, 2)).version, 3);
    const latest = await getSecret(freshStore(), p);
    assert.equal(latest.version, 3);
    assert.deepEqual(latest.data, { v: 3 });
    // Failed writes left no data behind.
    assert.equal(await barrier.getJson(dataPath(p, 4)), null);
  });

  it('cas_required makes a write without cas fail with ERR_CAS_MISMATCH', async () => {
    const p = 'cas/required';
    await putSecret(store, p, { v: 1 });
    await configureMetadata(store, p, { casRequired: true });
    assert.equal((await readMetadata(store, p)).cas_required, true);
    await assert.rejects(putSecret(store, p, { v: 'no cas' }), code('ERR_CAS_MISMATCH'));
    await assert.rejects(putSecret(freshStore(), p, { v: 'no cas' }), code('ERR_CAS_MISMATCH'));
    assert.equal((await putSecret(store, p, { v: 2 }, 1)).version, 2);
    await configureMetadata(store, p, { casRequired: false });
    assert.equal((await putSecret(store, p, { v: 3 })).version, 3);
  });
});

describe('max versions', () => {
  it('keeps the default 10 versions and removes older data from the barrier', async () => {
    const p = 'max/default';
    for (let v = 1; v <= 13; v++) await putSecret(store, p, { v });
    const meta = await readMetadata(store, p);
    assert.equal(meta.current_version, 13);
    assert.equal(meta.oldest_version, 4);
    assert.deepEqual(Object.keys(meta.versions).map(Number).sort((a, b) => a - b), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    for (let v = 1; v <= 3; v++) {
      assert.equal(await barrier.getJson(dataPath(p, v)), null, `data of v${v} removed`);
      await assert.rejects(getSecret(store, p, v), code('ERR_SECRET_NOT_FOUND'));
    }
    for (let v = 4; v <= 13; v++) assert.deepEqual((await getSecret(store, p, v)).data, { v });
    assert.deepEqual((await barrier.list(`secrets/data/${p}/`)).length, 10);
  });

  it('honours a configured max of 3', async () => {
    const p = 'max/three';
    await putSecret(store, p, { v: 1 });
    await configureMetadata(store, p, { maxVersions: 3 });
    assert.equal((await readMetadata(store, p)).max_versions, 3);
    for (let v = 2; v <= 7; v++) await putSecret(store, p, { v });
    const meta = await readMetadata(freshStore(), p);
    assert.equal(meta.current_version, 7);
    assert.equal(meta.oldest_version, 5);
    assert.deepEqual(Object.keys(meta.versions).sort(), ['5', '6', '7']);
    for (let v = 1; v <= 4; v++) assert.equal(await barrier.getJson(dataPath(p, v)), null, `data of v${v} removed`);
    for (let v = 5; v <= 7; v++) assert.deepEqual((await getSecret(store, p, v)).data, { v });
    assert.deepEqual((await barrier.list(`secrets/data/${p}/`)).sort(), [dataPath(p, 5), dataPath(p, 6), dataPath(p, 7)]);
  });

  it('lowering max versions trims on the next write', async () => {
    const p = 'max/lowered';
    for (let v = 1; v <= 6; v++) await putSecret(store, p, { v });
    await configureMetadata(store, p, { maxVersions: 2 });
    await putSecret(store, p, { v: 7 });
    const meta = await readMetadata(store, p);
    assert.deepEqual(Object.keys(meta.versions).sort(), ['6', '7']);
    for (let v = 1; v <= 5; v++) assert.equal(await barrier.getJson(dataPath(p, v)), null);
  });
});

describe('delete, undelete, destroy', () => {
  it('soft-deletes the latest version (ERR_SECRET_VERSION_DELETED) and undelete restores it', async () => {
    const p = 'life/soft';
    await putSecret(store, p, { v: 1 });
    await putSecret(store, p, { v: 2 });
    assert.deepEqual(await deleteVersions(store, p), [2]);
    await assert.rejects(getSecret(store, p), code('ERR_SECRET_VERSION_DELETED'));
    await assert.rejects(getSecret(store, p, 2), code('ERR_SECRET_VERSION_DELETED'));
    await assert.rejects(getSecret(freshStore(), p), code('ERR_SECRET_VERSION_DELETED'));
    assert.deepEqual((await getSecret(store, p, 1)).data, { v: 1 });
    assert.ok((await readMetadata(store, p)).versions['2']?.deleted_at);
    // The data is kept, only hidden.
    assert.deepEqual(await barrier.getJson(dataPath(p, 2)), { v: 2 });

    assert.deepEqual(await undeleteVersions(store, p, [2]), [2]);
    assert.deepEqual((await getSecret(store, p)).data, { v: 2 });
    assert.equal((await readMetadata(store, p)).versions['2']?.deleted_at, undefined);
  });

  it('soft-deletes named versions', async () => {
    const p = 'life/named';
    for (let v = 1; v <= 3; v++) await putSecret(store, p, { v });
    await deleteVersions(store, p, [1, 3]);
    await assert.rejects(getSecret(store, p, 1), code('ERR_SECRET_VERSION_DELETED'));
    await assert.rejects(getSecret(store, p, 3), code('ERR_SECRET_VERSION_DELETED'));
    assert.deepEqual((await getSecret(store, p, 2)).data, { v: 2 });
    await undeleteVersions(store, p, [1]);
    assert.deepEqual((await getSecret(store, p, 1)).data, { v: 1 });
    await assert.rejects(getSecret(store, p), code('ERR_SECRET_VERSION_DELETED'));
  });

  it('destroy removes the data for good (ERR_SECRET_VERSION_DESTROYED); undelete cannot bring it back', async () => {
    const p = 'life/destroy';
    await putSecret(store, p, { v: 1 });
    await putSecret(store, p, { v: 2 });
    await deleteVersions(store, p, [2]);
    assert.deepEqual(await destroyVersions(store, p, [1, 2]), [1, 2]);
    for (const v of [1, 2]) {
      await assert.rejects(getSecret(store, p, v), code('ERR_SECRET_VERSION_DESTROYED'));
      await assert.rejects(getSecret(freshStore(), p, v), code('ERR_SECRET_VERSION_DESTROYED'));
      assert.equal(await barrier.getJson(dataPath(p, v)), null);
      assert.equal(await storage.get(`data/${dataPath(p, v)}`), null);
    }
    await assert.rejects(getSecret(store, p), code('ERR_SECRET_VERSION_DESTROYED'));
    await undeleteVersions(store, p, [1, 2]);
    await assert.rejects(getSecret(store, p, 1), code('ERR_SECRET_VERSION_DESTROYED'));
    const meta = await readMetadata(store, p);
    assert.equal(meta.versions['1']?.destroyed, true);
    assert.equal(meta.versions['2']?.destroyed, true);
    // A new write still works after destruction.
    assert.equal((await putSecret(store, p, { v: 3 })).version, 3);
    assert.deepEqual((await getSecret(store, p)).data, { v: 3 });
  });

  it('deleteSecretCompletely removes the metadata and every data record', async () => {
    const p = 'life/gone';
    for (let v = 1; v <= 4; v++) await putSecret(store, p, { v });
    await deleteVersions(store, p, [2]);
    await destroyVersions(store, p, [3]);
    await deleteSecretCompletely(store, p);
    await assert.rejects(getSecret(store, p), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(getSecret(freshStore(), p), code('ERR_SECRET_NOT_FOUND'));
    await assert.rejects(readMetadata(store, p), code('ERR_SECRET_NOT_FOUND'));
    assert.equal(await barrier.getJson(metaPath(p)), null);
    for (let v = 1; v <= 4; v++) assert.equal(await barrier.getJson(dataPath(p, v)), null);
    assert.deepEqual(await barrier.list(`secrets/data/${p}/`), []);
    assert.deepEqual(await storage.list(`data/secrets/data/${p}/`), []);
    // The path can be used again from version 1, with cas=0.
    assert.equal((await putSecret(store, p, { fresh: true }, 0)).version, 1);
    assert.deepEqual((await getSecret(store, p)).data, { fresh: true });
  });

  it('secrets whose paths nest (a, a/1) do not share records', async () => {
    await putSecret(store, 'nest/a', { who: 'a' });
    await putSecret(store, 'nest/a/1', { who: 'a/1' });
    await deleteSecretCompletely(store, 'nest/a');
    assert.deepEqual((await getSecret(store, 'nest/a/1')).data, { who: 'a/1' });
  });
});

describe('listing', () => {
  it('lists the immediate children of a folder, sub-folders with a trailing slash', async () => {
    // A store of its own, so the root listing is exact.
    const listDir = tempDir('keyhold-domain-secrets-list-');
    const listStorage = SqliteStorage.open(path.join(listDir, 'keyhold.db'));
    try {
      const s = new SecretStore(new Barrier(listStorage, randomBytes(32)));
      for (const p of ['top', 'team/db', 'team/api', 'team/deep/one', 'team/deep/two', 'team/deeper/x/y', 'teams/other', 'other/z']) await putSecret(s, p, { p });
      const sorted = async (folder: string): Promise<string[]> => (await listSecrets(s, folder)).sort();
      assert.deepEqual(await sorted(''), ['other/', 'team/', 'teams/', 'top']);
      assert.deepEqual(await sorted('team'), ['api', 'db', 'deep/', 'deeper/']);
      assert.deepEqual(await sorted('team/'), ['api', 'db', 'deep/', 'deeper/']);
      assert.deepEqual(await sorted('team/deep'), ['one', 'two']);
      assert.deepEqual(await sorted('team/deeper'), ['x/']);
      assert.deepEqual(await sorted('nothing'), []);
      // Listing never includes data records or versions.
      assert.ok(!(await listSecrets(s, 'team')).some((n) => /^\d+$/.test(n)));
      // A deleted secret disappears from its folder; an emptied folder disappears from its parent.
      await deleteSecretCompletely(s, 'team/deeper/x/y');
      assert.deepEqual(await sorted('team'), ['api', 'db', 'deep/']);
      // Soft-deleted secrets are still listed (their metadata exists).
      await deleteVersions(s, 'team/db');
      assert.deepEqual(await sorted('team'), ['api', 'db', 'deep/']);
    } finally {
      await listStorage.close();
      fs.rmSync(listDir, { recursive: true, force: true });
    }
  });
});

describe('concurrency', () => {
  it('50 concurrent writes to one path lose nothing: versions 1..50, each value exactly once', async () => {
    const p = 'race/writes';
    // Keep every version (the default would trim to 10): create, raise max_versions, destroy the seed.
    await putSecret(store, p, { seed: true });
    await configureMetadata(store, p, { maxVersions: 100 });
    await destroyVersions(store, p, [1]);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => putSecret(store, p, { writer: i })));
    const versions = results.map((r) => r.version).sort((a, b) => a - b);
    assert.deepEqual(versions, Array.from({ length: 50 }, (_, i) => i + 2));

    for (const s of [store, freshStore()]) {
      const meta = await readMetadata(s, p);
      assert.equal(meta.current_version, 51);
      assert.equal((await getSecret(s, p)).version, 51);
    }
    const seen = new Map<number, number>();
    for (let v = 2; v <= 51; v++) {
      const { data } = await getSecret(store, p, v);
      const writer = data.writer as number;
      seen.set(writer, (seen.get(writer) ?? 0) + 1);
    }
    assert.equal(seen.size, 50);
    for (let i = 0; i < 50; i++) assert.equal(seen.get(i), 1, `writer ${i}`);
    // Each writer's reported version holds its own data.
    for (const [i, r] of results.entries()) assert.deepEqual((await getSecret(store, p, r.version)).data, { writer: i });
  });

  it('50 concurrent writes with the default max versions end at version 50 with 10 kept', async () => {
    const p = 'race/default-max';
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => putSecret(store, p, { writer: i })));
    assert.deepEqual(results.map((r) => r.version).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
    const meta = await readMetadata(freshStore(), p);
    assert.equal(meta.current_version, 50);
    assert.deepEqual(Object.keys(meta.versions).map(Number).sort((a, b) => a - b), [41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
    assert.equal((await barrier.list(`secrets/data/${p}/`)).length, 10);
    assert.equal((await getSecret(store, p)).version, 50);
  });

  it('50 concurrent cas=0 creates: exactly one succeeds, the rest get ERR_CAS_MISMATCH', async () => {
    const p = 'race/create';
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => putSecret(store, p, { creator: i }, 0)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, version: r.value.version }] : []));
    assert.equal(won.length, 1);
    assert.equal(won[0]?.version, 1);
    for (const r of results) if (r.status === 'rejected') code('ERR_CAS_MISMATCH')(r.reason);
    const current = await getSecret(freshStore(), p);
    assert.equal(current.version, 1);
    assert.deepEqual(current.data, { creator: won[0]?.i });
    assert.deepEqual(await barrier.list(`secrets/data/${p}/`), [dataPath(p, 1)]);
  });

  it('reads racing writes never pin stale metadata in the cache', async () => {
    const p = 'race/read-write';
    await putSecret(store, p, { v: 0 });
    const s = freshStore();
    const ops: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 30; i++) {
      ops.push(getSecret(s, p).catch(() => undefined));
      ops.push(putSecret(s, p, { v: i }));
      ops.push(getSecret(s, p).catch(() => undefined));
    }
    await Promise.all(ops);
    const truth = await readMetadata(freshStore(), p);
    assert.equal(truth.current_version, 31);
    assert.equal((await readMetadata(s, p)).current_version, 31);
    assert.equal((await getSecret(s, p)).version, 31);
  });
});
