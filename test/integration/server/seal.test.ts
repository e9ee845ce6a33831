/**
 * Seal and start-up behaviour of the real binary: a restart auto-unseals from the HSM; `keyhold
 * server --config` refuses to start, fast, clearly and without touching data, when the PIN is wrong,
 * the module is missing, the seal key is gone from the token or the store is uninitialised; the PIN
 * may come from an environment variable; a bad config is ERR_CONFIG.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { call, startDev, startServer, tempDir } from '../../helpers/server.js';
import { allObjects, DEV_TOKEN_LABEL, openDevToken, readPinFile, runCliTimed, sha256File, softHsmModule, type CliResult } from './support.js';

const CANARY = `CANARY-SECRET-${randomBytes(12).toString('hex')}`;

interface Config {
  listen?: string;
  storage: { sqlite: { path: string } };
  hsm: Record<string, unknown>;
  audit: { path: string };
  [extra: string]: unknown;
}

function devConfig(dir: string, hsm: Record<string, unknown> = {}): Config {
  return {
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: path.join(dir, 'keyhold.db') } },
    hsm: { module: softHsmModule(), tokenLabel: DEV_TOKEN_LABEL, pinFile: path.join(dir, 'hsm-pin'), ...hsm },
    audit: { path: path.join(dir, 'audit.log') },
  };
}

/** The data a failed start must leave alone (the server is stopped cleanly before this is taken). */
function dataHashes(dir: string): Record<string, string | null> {
  return Object.fromEntries(['keyhold.db', 'keyhold.db-wal', 'keyhold.db-shm', 'audit.log'].map((f) => [f, sha256File(path.join(dir, f))]));
}

/** A refused start: non-zero exit within 10 s, `keyhold: CODE: message` on stderr, no stack trace, no PIN. */
function assertRefused(r: CliResult, code: string, message: RegExp, pins: string[]): void {
  const out = r.stdout + r.stderr;
  assert.equal(r.signal, null, `still running after 10 s (killed):\n${out}`);
  assert.notEqual(r.code, 0, `exited 0:\n${out}`);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  const line = new RegExp(`^keyhold: ${code}: (.+)$`, 'm').exec(r.stderr);
  assert.ok(line, `stderr lacks "keyhold: ${code}: …":\n${r.stderr}`);
  assert.match(line[1] as string, message);
  assert.doesNotMatch(out, /^\s+at\s/m, `stack trace in output:\n${out}`);
  assert.doesNotMatch(out, /node:internal|\.js:\d+:\d+/, `stack frames in output:\n${out}`);
  for (const pin of pins) assert.ok(!out.includes(pin), 'a PIN appears in the output');
}

describe('seal and start-up', { timeout: 120_000 }, () => {
  const dataDir = tempDir('keyhold-seal-');
  const work = tempDir('keyhold-seal-work-');
  const env = { SOFTHSM2_CONF: path.join(dataDir, 'softhsm2.conf') };
  let rootToken = '';
  let ciphertext = '';
  let pin = '';
  const writeConfig = (name: string, config: unknown) => {
    const file = path.join(work, name);
    fs.writeFileSync(file, typeof config === 'string' ? config : stringify(config));
    return file;
  };

  before(async () => {
    const dev = await startDev(dataDir);
    rootToken = dev.rootToken;
    pin = readPinFile(dataDir);
    const put = await call(dev.address, 'PUT', '/v1/secrets/app/config', rootToken, { data: { password: CANARY } });
    assert.equal(put.status, 200, put.text);
    for (const protection of ['hsm', 'wrapped']) {
      const created = await call(dev.address, 'POST', '/v1/keys', rootToken, { name: `seal-${protection}`, type: 'aes256-gcm', protection });
      assert.equal(created.status, 200, created.text);
    }
    const enc = await call(dev.address, 'POST', '/v1/keys/seal-hsm/encrypt', rootToken, { plaintext: Buffer.from(CANARY).toString('base64') });
    assert.equal(enc.status, 200, enc.text);
    ciphertext = enc.body.ciphertext;
    assert.equal(await dev.stop('SIGTERM'), 0, dev.output());
  });

  after(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('(a) auto-unseals on restart: same data, health 200, same root token', async () => {
    const tokenFile = fs.readFileSync(path.join(dataDir, 'root-token'), 'utf8');
    const dev = await startDev(dataDir);
    try {
      assert.equal(dev.rootToken, rootToken, 'root token file changed');
      assert.equal(fs.readFileSync(path.join(dataDir, 'root-token'), 'utf8'), tokenFile);
      const health = await call(dev.address, 'GET', '/v1/sys/health');
      assert.equal(health.status, 200, health.text);
      assert.equal(health.body.sealed, false);
      assert.equal(health.body.hsm.ok, true);
      const self = await call(dev.address, 'GET', '/v1/tokens/self', rootToken);
      assert.equal(self.status, 200, self.text);
      assert.deepEqual(self.body.policies, ['root']);
      const secret = await call(dev.address, 'GET', '/v1/secrets/app/config', rootToken);
      assert.equal(secret.status, 200, secret.text);
      assert.deepEqual(secret.body.data, { password: CANARY });
      const dec = await call(dev.address, 'POST', '/v1/keys/seal-hsm/decrypt', rootToken, { ciphertext });
      assert.equal(dec.status, 200, dec.text);
      assert.equal(Buffer.from(dec.body.plaintext, 'base64').toString('utf8'), CANARY);
      const described = await call(dev.address, 'GET', '/v1/keys/seal-wrapped', rootToken);
      assert.equal(described.status, 200, described.text);
      // The wrapped key's material unwraps too.
      const round = await call(dev.address, 'POST', '/v1/keys/seal-wrapped/encrypt', rootToken, { plaintext: 'aGk=' });
      assert.equal(round.status, 200, round.text);
      assert.equal((await call(dev.address, 'POST', '/v1/keys/seal-wrapped/decrypt', rootToken, { ciphertext: round.body.ciphertext })).body.plaintext, 'aGk=');
    } finally {
      assert.equal(await dev.stop('SIGTERM'), 0, dev.output());
    }
  });

  it('(b) refuses to start on a wrong PIN, a missing module, a missing HSM key or an uninitialised store, touching no data', async () => {
    // Control: the same config with nothing wrong serves the same data.
    const good = await startServer(writeConfig('good.yaml', devConfig(dataDir)), env);
    try {
      const secret = await call(good.address, 'GET', '/v1/secrets/app/config', rootToken);
      assert.equal(secret.status, 200, secret.text);
      assert.deepEqual(secret.body.data, { password: CANARY });
    } finally {
      assert.equal(await good.stop(), 0, good.output());
    }
    const before = dataHashes(dataDir);
    assert.ok(before['keyhold.db'] && before['audit.log']);

    // Wrong PIN.
    const wrongPin = randomBytes(16).toString('hex');
    assert.notEqual(wrongPin, pin);
    const wrongPinFile = path.join(work, 'wrong-pin');
    fs.writeFileSync(wrongPinFile, `${wrongPin}\n`, { mode: 0o600 });
    const wrong = await runCliTimed(['server', '--config', writeConfig('wrong-pin.yaml', devConfig(dataDir, { pinFile: wrongPinFile }))], env);
    assertRefused(wrong, 'ERR_HSM_PIN_INCORRECT', /PIN is incorrect/, [pin, wrongPin]);

    // Missing module.
    const missingModule = path.join(work, 'no-such-dir', 'libsofthsm2.so');
    const noModule = await runCliTimed(['server', '--config', writeConfig('no-module.yaml', devConfig(dataDir, { module: missingModule }))], env);
    assertRefused(noModule, 'ERR_HSM_MODULE', /cannot load PKCS#11 module .*no-such-dir/, [pin]);

    // Uninitialised store: an empty SQLite path (a fresh folder), the dev audit log.
    const emptyDb = path.join(work, 'empty', 'keyhold.db');
    const uninit = await runCliTimed(['server', '--config', writeConfig('uninit.yaml', { ...devConfig(dataDir), storage: { sqlite: { path: emptyDb } } })], env);
    assertRefused(uninit, 'ERR_NOT_INITIALIZED', /not initialised.*keyhold init/, [pin]);
    assert.equal(fs.existsSync(emptyDb), false, 'a refused start on a mistyped store path left a database behind');

    assert.deepEqual(dataHashes(dataDir), before, 'a refused start changed keyhold.db, its WAL/SHM or audit.log');

    // Missing HSM key, in a copy of the data dir whose token lost its seal key.
    const copy = path.join(work, 'copy');
    fs.cpSync(dataDir, copy, { recursive: true });
    const confFile = path.join(copy, 'softhsm2.conf');
    const conf = fs.readFileSync(confFile, 'utf8');
    assert.match(conf, /^directories\.tokendir = .*$/m);
    fs.writeFileSync(confFile, conf.replace(/^directories\.tokendir = .*$/m, `directories.tokendir = ${path.join(copy, 'tokens')}`));
    const token = openDevToken(copy);
    let destroyed = '';
    try {
      const seal = allObjects(token.lib, token.session).filter((o) => o.label.startsWith('keyhold/seal/'));
      assert.equal(seal.length, 1, 'expected exactly one seal key in the copied token');
      destroyed = (seal[0] as { label: string }).label;
      token.lib.C_DestroyObject(token.session, (seal[0] as { handle: Buffer }).handle);
      assert.equal(allObjects(token.lib, token.session).filter((o) => o.label === destroyed).length, 0);
    } finally {
      token.close();
    }
    const copyBefore = dataHashes(copy);
    const noKey = await runCliTimed(['server', '--config', writeConfig('no-key.yaml', devConfig(copy))], { SOFTHSM2_CONF: confFile });
    assertRefused(noKey, 'ERR_HSM_KEY_MISSING', new RegExp(`${destroyed.replace(/\//g, '\\/')} not found in token`), [pin]);
    assert.deepEqual(dataHashes(copy), copyBefore, 'the missing-key start changed the copy\'s data');

    // The wrong PIN did not lock the token: the original still starts with the right one.
    assert.deepEqual(dataHashes(dataDir), before);
    const dev = await startDev(dataDir);
    try {
      assert.equal((await call(dev.address, 'GET', '/v1/sys/health')).status, 200);
      assert.deepEqual((await call(dev.address, 'GET', '/v1/secrets/app/config', rootToken)).body.data, { password: CANARY });
      assert.ok(!dev.output().includes(pin));
    } finally {
      assert.equal(await dev.stop('SIGTERM'), 0, dev.output());
    }
  });

  it('(c) takes the PIN from the environment variable named by hsm.pinEnv', async () => {
    const config = devConfig(dataDir);
    delete config.hsm.pinFile;
    config.hsm.pinEnv = 'KEYHOLD_TEST_HSM_PIN';
    const server = await startServer(writeConfig('pin-env.yaml', config), { ...env, KEYHOLD_TEST_HSM_PIN: pin });
    try {
      const health = await call(server.address, 'GET', '/v1/sys/health');
      assert.equal(health.status, 200, health.text);
      assert.deepEqual((await call(server.address, 'GET', '/v1/secrets/app/config', rootToken)).body.data, { password: CANARY });
    } finally {
      assert.equal(await server.stop(), 0, server.output());
    }
    assert.ok(!server.output().includes(pin), 'the PIN appears in the output');

    // Named but unset: a config error, not a login attempt.
    const unset = await runCliTimed(['server', '--config', writeConfig('pin-env-unset.yaml', config)], { ...env, KEYHOLD_TEST_HSM_PIN: '' });
    assertRefused(unset, 'ERR_CONFIG', /KEYHOLD_TEST_HSM_PIN is not set/, [pin]);
  });

  it('(d) rejects a config with an unknown field or a bad listen address (ERR_CONFIG)', async () => {
    const before = dataHashes(dataDir);
    const cases: Array<[string, unknown, RegExp]> = [
      ['unknown top-level field', { ...devConfig(dataDir), storrage: { path: 'x' } }, /storrage/],
      ['unknown hsm field', { ...devConfig(dataDir), hsm: { ...devConfig(dataDir).hsm, pin: 'not-allowed' } }, /hsm/],
      ['unknown storage field', { ...devConfig(dataDir), storage: { sqlite: { path: path.join(dataDir, 'keyhold.db'), mode: 'fast' } } }, /storage/],
      ['listen without port', { ...devConfig(dataDir), listen: 'nonsense' }, /listen address "nonsense"/],
      ['listen port out of range', { ...devConfig(dataDir), listen: '127.0.0.1:99999' }, /listen address/],
      ['not YAML', 'listen: [unclosed\n', /cannot read config|invalid/],
    ];
    for (const [what, config, message] of cases) {
      const r = await runCliTimed(['server', '--config', writeConfig(`bad-${what.replace(/\W+/g, '-')}.yaml`, config)], env);
      try {
        assertRefused(r, 'ERR_CONFIG', message, [pin]);
      } catch (err) {
        (err as Error).message = `${what}: ${(err as Error).message}`;
        throw err;
      }
    }
    assert.deepEqual(dataHashes(dataDir), before, 'a rejected config changed data');
  });
});
