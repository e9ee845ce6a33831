/**
 * `keyhold seal migrate` on a PostgreSQL store: the same recovery as on SQLite (recovery.test.ts),
 * through the storage interface, and the migration recorded in the audit table as the reason of
 * the first chain of the server on the new token.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { makeSoftHsmToken, type SoftHsmTestToken } from '../../helpers/softhsm.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { runCliTimed } from './support.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('recovery shares on a PostgreSQL store', () => {
  let pg: TestPostgres;
  const dir = tempDir('keyhold-recovery-pg-');
  const oldToken = makeSoftHsmToken('kh-recovery-pg-old');
  let newToken: SoftHsmTestToken;
  let root = '';
  let shares: string[] = [];
  let server: DevServer | undefined;
  const sealed = { ciphertext: '', plaintext: b64('kept across HSMs') };

  const configFor = (token: SoftHsmTestToken, name: string): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify({ listen: '127.0.0.1:0', storage: { postgres: { url: pg.url, passwordFile: pg.passwordFile } }, hsm: token.config, audit: {} }));
    return file;
  };
  const kvDigest = async (): Promise<string> => {
    const rows = (await pg.admin('SELECT key, value FROM kv ORDER BY key')).rows as Array<{ key: string; value: Buffer }>;
    const hash = createHash('sha256');
    for (const row of rows) hash.update(`${row.key}\0${row.value.length}\0`).update(row.value);
    return hash.digest('hex');
  };
  const shareFiles = (picked: string[], name: string): string[] => picked.flatMap((share, i) => {
    const file = join(dir, `${name}-${i}.share`);
    writeFileSync(file, share);
    return ['--share-file', file];
  });

  before(async () => {
    pg = await startPostgres();
    const init = await runCliTimed(['init', '--config', configFor(oldToken, 'old'), '--root-token-file', join(dir, 'root-token'), '--recovery-shares', '3', '--recovery-threshold', '2'], { SOFTHSM2_CONF: oldToken.confPath }, 60_000);
    assert.equal(init.code, 0, init.stderr);
    shares = (JSON.parse(init.stdout) as { recoveryShares: { shares: Array<{ share: string }> } }).recoveryShares.shares.map((s) => s.share);
    root = readFileSync(join(dir, 'root-token'), 'utf8').trim();
    const old = await startServer(configFor(oldToken, 'old'), { SOFTHSM2_CONF: oldToken.confPath }, dir);
    try {
      assert.equal((await call(old.address, 'POST', '/v1/keys', root, { name: 'app', type: 'aes256-gcm', protection: 'wrapped' })).status, 200);
      const enc = await call(old.address, 'POST', '/v1/keys/app/encrypt', root, { plaintext: sealed.plaintext });
      assert.equal(enc.status, 200, enc.text);
      sealed.ciphertext = enc.body.ciphertext as string;
      assert.equal((await call(old.address, 'PUT', '/v1/secrets/app/db', root, { data: { password: 'kept' } })).status, 200);
    } finally {
      await old.stop();
    }
    // The old HSM is lost for good.
    for (const entry of readdirSync(join(oldToken.dir, 'tokens'))) rmSync(join(oldToken.dir, 'tokens', entry), { recursive: true, force: true });
    newToken = makeSoftHsmToken('kh-recovery-pg-new');
  });
  after(async () => {
    await server?.stop();
    pg?.destroy();
    for (const d of [dir, oldToken.dir, newToken?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('refuses one share of a threshold of two, and writes nothing to the database', async () => {
    const before = await kvDigest();
    const r = await runCliTimed(['seal', 'migrate', '--config', configFor(newToken, 'new'), ...shareFiles([shares[1] ?? ''], 'one')], { SOFTHSM2_CONF: newToken.confPath }, 60_000);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /ERR_RECOVERY_SHARES: 1 distinct share\(s\) given, but this store needs 2 of its 3/);
    assert.equal(await kvDigest(), before);
  });

  it('migrates with two shares; a server on the new token serves the key and the secret, and audits the migration', async () => {
    const r = await runCliTimed(['seal', 'migrate', '--config', configFor(newToken, 'new'), ...shareFiles([shares[2] ?? '', shares[0] ?? ''], 'two')], { SOFTHSM2_CONF: newToken.confPath }, 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).recoveredKeys, ['app']);
    server = await startServer(configFor(newToken, 'new'), { SOFTHSM2_CONF: newToken.confPath }, dir);
    const dec = await call(server.address, 'POST', '/v1/keys/app/decrypt', root, { ciphertext: sealed.ciphertext });
    assert.equal(dec.status, 200, dec.text);
    assert.equal(dec.body.plaintext, sealed.plaintext);
    assert.equal((await call(server.address, 'GET', '/v1/secrets/app/db', root)).body.data.password, 'kept');
    const starts = (await pg.admin("SELECT entry FROM audit WHERE entry LIKE '%\"chain-start\"%' ORDER BY chain, seq")).rows.map((row: { entry: string }) => JSON.parse(row.entry) as { data: Record<string, string> });
    const migrated = starts.filter((s) => s.data.reason === 'seal-migrate');
    assert.equal(migrated.length, 1, JSON.stringify(starts.map((s) => s.data.reason)));
    assert.equal(migrated[0]?.data.sealToTokenLabel, 'kh-recovery-pg-new');
  });
});
