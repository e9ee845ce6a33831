/**
 * Seal and keys on an RSA/EC-only HSM: a real keyhold server behind a real p11-kit server in
 * front of SoftHSM (the hop has no AES-GCM, decrypts RSA-OAEP with SHA-1 only, signs with raw
 * ECDSA and RSA-PKCS-PSS). The store seals with RSA-OAEP, restarts and unseals; wrapped keys and
 * RSA/EC hsm keys work before and after; an AES hsm key is refused; audit checkpoints verify. The
 * same token used directly still seals with AES-GCM. Data-object mode keeps the wrapped root key
 * in the token only.
 */
import assert from 'node:assert/strict';
import { createPublicKey, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { startP11KitFleet, type P11KitFleet, type P11KitMember } from '../../helpers/p11kit.js';
import { pkcs11Tool, parseListedObjects } from '../../helpers/pkcs11-tool.js';
import { call, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { readPin } from '../../helpers/softhsm.js';
import { runCliTimed, sha256File } from './support.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

let fleet: P11KitFleet;
let member: P11KitMember;
const servers: DevServer[] = [];

before(async () => {
  fleet = await startP11KitFleet(1, 'keyhold-anyhsm');
  member = fleet.members[0] as P11KitMember;
});

after(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  await fleet?.stop();
});

interface Store {
  dir: string;
  configFile: string;
  env: NodeJS.ProcessEnv;
}

/** A store in a new dir, reaching the token through the p11-kit member (`remote`) or SoftHSM directly. */
function newStore(remote: boolean, extra: Record<string, unknown> = {}): Store {
  const dir = tempDir('keyhold-anyhsm-');
  const configFile = path.join(dir, 'keyhold.yaml');
  fs.writeFileSync(configFile, stringify({
    listen: '127.0.0.1:0',
    storage: { sqlite: { path: path.join(dir, 'keyhold.db') } },
    hsm: { module: remote ? member.module : fleet.token.module, tokenLabel: fleet.token.label, pinFile: fleet.token.pinFile },
    audit: { path: path.join(dir, 'audit.log'), checkpointEvery: 5 },
    ...extra,
  }));
  return { dir, configFile, env: remote ? { ...member.config.env } : {} };
}

/** `keyhold init`, the root token written where startServer looks for it. */
async function init(store: Store, args: string[] = []): Promise<void> {
  const r = await runCliTimed(['init', '--config', store.configFile, '--root-token-file', path.join(store.dir, 'root-token'), ...args], store.env, 90_000);
  assert.equal(r.code, 0, `init failed: ${r.stdout}${r.stderr}`);
}

async function serve(store: Store): Promise<DevServer> {
  const server = await startServer(store.configFile, store.env, store.dir);
  servers.push(server);
  return server;
}

async function stop(server: DevServer): Promise<void> {
  assert.equal(await server.stop(), 0, server.output());
}

/** The stored rows of the SQLite store (read with the server stopped). */
function rows(store: Store): Array<{ key: string; value: Buffer }> {
  const db = new Database(path.join(store.dir, 'keyhold.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT key, value FROM kv').all() as Array<{ key: string; value: Buffer }>;
  } finally {
    db.close();
  }
}

function sealRecord(store: Store): Record<string, any> {
  const row = rows(store).find((r) => r.key === 'core/seal');
  assert.ok(row, 'no seal record');
  return JSON.parse(row.value.toString('utf8'));
}

async function ok(server: DevServer, what: string, method: string, route: string, body?: unknown): Promise<any> {
  const r = await call(server.address, method, route, server.rootToken, body);
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  return r.body;
}

/** Every key this store has, used: what each produced is checked again after a restart. */
interface Outputs {
  ciphertexts: Record<string, string>;
  signatures: Record<string, string>;
}

const MESSAGE = b64(`any-hsm ${randomBytes(8).toString('hex')}`);
const ENCRYPTING = [['wrapped-aes', 'aes256-gcm', 'wrapped'], ['wrapped-rsa', 'rsa-2048', 'wrapped'], ['hsm-rsa', 'rsa-2048', 'hsm']] as const;
const SIGNING = [['wrapped-ec', 'ec-p256', 'wrapped'], ['wrapped-hmac', 'hmac-sha256', 'wrapped'], ['hsm-hmac', 'hmac-sha256', 'hsm'], ['hsm-ec', 'ec-p256', 'hsm'], ['hsm-ec384', 'ec-p384', 'hsm'], ['hsm-rsa', 'rsa-2048', 'hsm']] as const;

async function createKeys(server: DevServer): Promise<void> {
  const made = new Set<string>();
  for (const [name, type, protection] of [...ENCRYPTING, ...SIGNING]) {
    if (made.has(name)) continue;
    made.add(name);
    await ok(server, `create ${name}`, 'POST', '/v1/keys', { name, type, protection });
  }
}

async function useKeys(server: DevServer, earlier?: Outputs): Promise<Outputs> {
  const out: Outputs = { ciphertexts: {}, signatures: {} };
  for (const [name] of ENCRYPTING) {
    const { ciphertext } = await ok(server, `encrypt ${name}`, 'POST', `/v1/keys/${name}/encrypt`, { plaintext: MESSAGE });
    out.ciphertexts[name] = ciphertext;
    for (const c of [ciphertext, earlier?.ciphertexts[name]].filter(Boolean)) {
      const { plaintext } = await ok(server, `decrypt ${name}`, 'POST', `/v1/keys/${name}/decrypt`, { ciphertext: c });
      assert.equal(plaintext, MESSAGE, name);
    }
  }
  for (const [name] of SIGNING) {
    const { signature } = await ok(server, `sign ${name}`, 'POST', `/v1/keys/${name}/sign`, { input: MESSAGE });
    out.signatures[name] = signature;
    for (const s of [signature, earlier?.signatures[name]].filter(Boolean)) {
      const v = await ok(server, `verify ${name}`, 'POST', `/v1/keys/${name}/verify`, { input: MESSAGE, signature: s });
      assert.equal(v.valid, true, name);
    }
    const bad = await ok(server, `verify ${name} (other input)`, 'POST', `/v1/keys/${name}/verify`, { input: b64('other'), signature });
    assert.equal(bad.valid, false, name);
  }
  return out;
}

describe('seal and keys on an RSA/EC-only HSM (p11-kit hop)', { timeout: 600_000 }, () => {
  // Made in the first test: the fleet starts in before().
  let remote: Store;
  let outputs: Outputs;
  let publicKeyFile = '';

  it('seals with RSA-OAEP (SHA-1 on this token), material wrapped in memory, no AES key in the token', async () => {
    remote = newStore(true);
    await init(remote);
    const record = sealRecord(remote);
    assert.equal(record.version, 2);
    assert.equal(record.method, 'rsa-oaep');
    assert.equal(record.oaepHash, 'sha1');
    assert.deepEqual(record.wrap, { mode: 'memory' });
    assert.equal(typeof record.publicKeySpki, 'string');
    assert.equal(createPublicKey({ key: Buffer.from(record.publicKeySpki, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength, 3072);
    assert.equal(Buffer.from(record.wrappedRootKey, 'base64').length, 384);
    // The token holds the RSA seal key and the audit key, both never extractable; no secret key.
    const listed = parseListedObjects(pkcs11Tool(fleet.token.module, fleet.token.confPath, ['--login', '--pin', readPin(fleet.token), '-O']).stdout);
    const seal = listed.find((o) => o.label === record.sealKeyLabel);
    assert.ok(seal, `seal key ${record.sealKeyLabel} not listed`);
    assert.match(seal.header, /^Private Key Object; RSA/);
    assert.match(seal.access ?? '', /never extractable/);
    assert.ok(!listed.some((o) => /^Secret Key Object/.test(o.header)), 'a secret key in the token');
  });

  it('wrapped keys and RSA/EC hsm keys encrypt, decrypt, sign and verify; an AES hsm key is refused by name of the missing mechanism', async () => {
    const server = await serve(remote);
    await createKeys(server);
    outputs = await useKeys(server);
    const r = await call(server.address, 'POST', '/v1/keys', server.rootToken, { name: 'hsm-aes', type: 'aes256-gcm', protection: 'hsm' });
    assert.equal(r.status, 501, r.text);
    assert.equal(r.body.error.code, 'ERR_HSM_MECHANISM_UNSUPPORTED');
    assert.equal(r.body.error.message, 'the token cannot hold aes256-gcm keys with protection=hsm: it lacks AES-GCM; use protection=wrapped');
    assert.equal((await call(server.address, 'GET', '/v1/keys/hsm-aes', server.rootToken)).status, 404, 'nothing was recorded');
    const pk = await runCliTimed(['audit', 'public-key'], { KEYHOLD_ADDR: server.address }, 30_000);
    assert.equal(pk.code, 0, pk.stderr);
    publicKeyFile = path.join(remote.dir, 'audit-public.pem');
    fs.writeFileSync(publicKeyFile, pk.stdout);
    await stop(server);
  });

  it('restarts, unseals through the hop, and every key still works on what it made before', async () => {
    const server = await serve(remote);
    await useKeys(server, outputs);
    await stop(server);
  });

  it('audit checkpoints are signed by the token\'s EC key through the hop, and `keyhold audit verify` passes', async () => {
    const lines = fs.readFileSync(path.join(remote.dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; signature?: string });
    const checkpoints = lines.filter((l) => l.type === 'checkpoint');
    assert.ok(checkpoints.length >= 2, `only ${checkpoints.length} checkpoints`);
    const r = await runCliTimed(['audit', 'verify', '--file', path.join(remote.dir, 'audit.log'), '--public-key', publicKeyFile], {}, 30_000);
    assert.equal(r.code, 0, `audit verify: ${r.stdout}${r.stderr}`);
  });

  it('the same store opened on the token directly unseals by its record (RSA-OAEP); a new store there seals with AES-GCM and the HSM wrap key', async () => {
    const direct = { ...remote, env: {} };
    fs.writeFileSync(direct.configFile, fs.readFileSync(direct.configFile, 'utf8').replace(member.module, fleet.token.module));
    const server = await serve(direct);
    await useKeys(server, outputs);
    await stop(server);
    const aes = newStore(false);
    await init(aes);
    const record = sealRecord(aes);
    assert.equal(record.method, 'aes-gcm');
    assert.equal(record.wrap.mode, 'hsm');
    assert.match(record.wrap.keyLabel, /^keyhold\/wrap\/[0-9a-f]{8}$/);
  });
});

describe('data-object mode on the hop', { timeout: 300_000 }, () => {
  let store: Store;
  let record: Record<string, any>;
  const pin = () => readPin(fleet.token);

  it('the wrapped root key is a private, unmodifiable data object in the token and nowhere in storage', async () => {
    store = newStore(true, { seal: { dataObject: true } });
    await init(store);
    record = sealRecord(store);
    assert.equal(record.method, 'rsa-oaep');
    assert.equal(record.wrappedRootKey, undefined);
    assert.match(record.rootKeyObject, /^keyhold\/seal\/root\/[0-9a-f]{8}$/);
    const listed = pkcs11Tool(fleet.token.module, fleet.token.confPath, ['--login', '--pin', pin(), '-O', '--type', 'data']);
    assert.equal(listed.status, 0, listed.stderr);
    const object = new RegExp(`Data object \\d+\\s+label:\\s+'${record.rootKeyObject}'[\\s\\S]*?flags:\\s+([^\\n]*)`).exec(listed.stdout);
    assert.ok(object, `data object not listed:\n${listed.stdout}`);
    assert.match(object[1] as string, /private/);
    assert.doesNotMatch(object[1] as string, /modifiable/);
    // Not visible without logging in.
    const anonymous = pkcs11Tool(fleet.token.module, fleet.token.confPath, ['-O', '--type', 'data']);
    assert.ok(!anonymous.stdout.includes(record.rootKeyObject), 'the data object is visible without login');
    // Its value (the RSA-OAEP ciphertext) is in no stored row.
    const valueFile = path.join(store.dir, 'root-object.bin');
    const read = pkcs11Tool(fleet.token.module, fleet.token.confPath, ['--login', '--pin', pin(), '--read-object', '--type', 'data', '--label', record.rootKeyObject, '--output-file', valueFile]);
    assert.equal(read.status, 0, read.stderr);
    const value = fs.readFileSync(valueFile);
    assert.equal(value.length, 384);
    for (const row of rows(store)) {
      assert.ok(!row.value.includes(value) && !row.value.toString('utf8').includes(value.toString('base64')), `the wrapped root key is in row ${row.key}`);
    }
  });

  it('restarts and unseals from the data object; with the object destroyed, start-up fails clearly and writes nothing', async () => {
    const server = await serve(store);
    await ok(server, 'create', 'POST', '/v1/keys', { name: 'k', type: 'aes256-gcm', protection: 'wrapped' });
    const { ciphertext } = await ok(server, 'encrypt', 'POST', '/v1/keys/k/encrypt', { plaintext: MESSAGE });
    await stop(server);
    const again = await serve(store);
    assert.equal((await ok(again, 'decrypt', 'POST', '/v1/keys/k/decrypt', { ciphertext })).plaintext, MESSAGE);
    await stop(again);

    const del = pkcs11Tool(fleet.token.module, fleet.token.confPath, ['--login', '--pin', pin(), '--delete-object', '--type', 'data', '--label', record.rootKeyObject]);
    assert.equal(del.status, 0, del.stderr);
    const files = ['keyhold.db', 'keyhold.db-wal', 'keyhold.db-shm', 'audit.log'];
    const hashes = () => Object.fromEntries(files.map((f) => [f, sha256File(path.join(store.dir, f))]));
    const before = hashes();
    const r = await runCliTimed(['server', '--config', store.configFile], store.env, 30_000);
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^keyhold: ERR_HSM_KEY_MISSING: HSM data object "${record.rootKeyObject}", which holds this store's wrapped root key, is not in token "${fleet.token.label}"`, 'm'));
    assert.doesNotMatch(r.stderr, /^\s+at\s/m);
    assert.deepEqual(hashes(), before);
  });
});
