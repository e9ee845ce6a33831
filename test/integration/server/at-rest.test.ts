/**
 * Nothing sensitive at rest: after real traffic against `keyhold dev`, no canary plaintext is in
 * SQLite (db, WAL, SHM), the audit log or the server's output; SQLite holds only ciphertext; and
 * every object keyhold left in the SoftHSM token is a sensitive, never-extractable private or
 * secret key (checked in-process with pkcs11js and independently with OpenSC's pkcs11-tool).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pkcs11 from 'pkcs11js';
import { call, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { allObjects, openDevToken, parseListedObjects, pkcs11ToolListObjects } from './support.js';
import { assertOnlyNonExtractableKeys } from '../../helpers/pkcs11-tool.js';

const KEY_TYPES = ['aes256-gcm', 'hmac-sha256', 'ec-p256', 'ec-p384', 'rsa-2048'] as const;
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

const CANARY_SECRET = `CANARY-SECRET-${randomBytes(12).toString('hex')}`;
const CANARY_SECRET_2 = `CANARY-SECRET-${randomBytes(12).toString('hex')}`;
const CANARY_PLAIN = `CANARY-PLAIN-${randomBytes(12).toString('hex')}`;

interface CreatedKey { name: string; type: string; protection: 'hsm' | 'wrapped' }

describe('keyhold dev: nothing sensitive at rest', { timeout: 180_000 }, () => {
  const dataDir = tempDir('keyhold-at-rest-');
  let server: DevServer;
  let exitCode: number | null = null;
  let output = '';
  let rootToken = '';
  const keys: CreatedKey[] = [];
  /** Data-key plaintexts the API returned: they must not be at rest either. */
  const dataKeys: Buffer[] = [];
  let hsmKeyVersions = 0;

  before(async () => {
    server = await startDev(dataDir);
    rootToken = server.rootToken;
    const api = (method: string, p: string, body?: unknown) => call(server.address, method, p, rootToken, body);
    const ok = async (method: string, p: string, body?: unknown) => {
      const r = await api(method, p, body);
      assert.ok(r.status >= 200 && r.status < 300, `${method} ${p} → ${r.status} ${r.text}`);
      return r.body;
    };

    for (const protection of ['hsm', 'wrapped'] as const) {
      for (const type of KEY_TYPES) keys.push({ name: `${type}-${protection}`, type, protection });
    }
    keys.push({ name: 'rsa-3072-hsm', type: 'rsa-3072', protection: 'hsm' }, { name: 'rsa-4096-hsm', type: 'rsa-4096', protection: 'hsm' });
    for (const key of keys) {
      const created = await ok('POST', '/v1/keys', key);
      assert.equal(created.protection, key.protection);
      if (key.protection === 'hsm') hsmKeyVersions++;
    }
    // A second version of one HSM key (another token object) and of one wrapped key.
    for (const name of ['aes256-gcm-hsm', 'aes256-gcm-wrapped']) {
      const rotated = await ok('POST', `/v1/keys/${name}/rotate`);
      assert.equal(rotated.latest_version, 2);
    }
    hsmKeyVersions++;

    // Secrets with canaries, two versions of one, read back by version.
    const v1 = await ok('PUT', '/v1/secrets/app/db', { data: { username: 'app', password: CANARY_SECRET } });
    const v2 = await ok('PUT', '/v1/secrets/app/db', { data: { username: 'app', password: CANARY_SECRET_2, nested: { canary: CANARY_SECRET } } });
    await ok('PUT', '/v1/secrets/other/thing', { data: { value: CANARY_SECRET } });
    assert.equal((await ok('GET', `/v1/secrets/app/db?version=${v1.version}`)).data.password, CANARY_SECRET);
    assert.deepEqual((await ok('GET', `/v1/secrets/app/db?version=${v2.version}`)).data, { username: 'app', password: CANARY_SECRET_2, nested: { canary: CANARY_SECRET } });
    assert.equal((await ok('GET', '/v1/secrets/other/thing')).data.value, CANARY_SECRET);

    // Encrypt/decrypt the canary with HSM and wrapped keys (AES and RSA-OAEP).
    for (const name of ['aes256-gcm-hsm', 'aes256-gcm-wrapped', 'rsa-2048-hsm', 'rsa-2048-wrapped', 'rsa-4096-hsm']) {
      const context = name.startsWith('aes') ? b64('ctx') : undefined;
      const enc = await ok('POST', `/v1/keys/${name}/encrypt`, { plaintext: b64(CANARY_PLAIN), ...(context ? { context } : {}) });
      assert.match(enc.ciphertext, new RegExp(`^keyhold:${name}:v\\d+:`));
      assert.ok(!enc.ciphertext.includes(b64(CANARY_PLAIN)));
      const dec = await ok('POST', `/v1/keys/${name}/decrypt`, { ciphertext: enc.ciphertext, ...(context ? { context } : {}) });
      assert.equal(Buffer.from(dec.plaintext, 'base64').toString('utf8'), CANARY_PLAIN);
      // Keep a ciphertext at rest too, as a user would.
      await ok('PUT', `/v1/secrets/ciphertexts/${name}`, { data: { ciphertext: enc.ciphertext } });
    }

    // Data keys: plaintext + wrapped, and wrapped only; the wrapped one decrypts to the plaintext.
    for (const name of ['aes256-gcm-hsm', 'aes256-gcm-wrapped']) {
      const dk = await ok('POST', `/v1/keys/${name}/datakey`, { bits: 256 });
      const plain = Buffer.from(dk.plaintext, 'base64');
      assert.equal(plain.length, 32);
      dataKeys.push(plain);
      const back = await ok('POST', `/v1/keys/${name}/decrypt`, { ciphertext: dk.ciphertext });
      assert.equal(back.plaintext, dk.plaintext);
      const wrappedOnly = await ok('POST', `/v1/keys/${name}/datakey`, { bits: 128, plaintext: false });
      assert.equal(wrappedOnly.plaintext, undefined);
    }

    // Sign / MAC the canary with every signing key, and verify.
    for (const key of keys.filter((k) => k.type !== 'aes256-gcm')) {
      const signed = await ok('POST', `/v1/keys/${key.name}/sign`, { input: b64(CANARY_PLAIN) });
      const verified = await ok('POST', `/v1/keys/${key.name}/verify`, { input: b64(CANARY_PLAIN), signature: signed.signature });
      assert.equal(verified.valid, true, `${key.name} signature did not verify`);
      const forged = await ok('POST', `/v1/keys/${key.name}/verify`, { input: b64(CANARY_PLAIN + 'x'), signature: signed.signature });
      assert.equal(forged.valid, false, `${key.name} verified a signature over other data`);
    }
    for (const key of keys) {
      const described = await ok('GET', `/v1/keys/${key.name}`);
      assert.equal(described.type, key.type);
      assert.doesNotMatch(JSON.stringify(described), /wrappedMaterial|hsmLabel|wrapped_material/, 'describe must not expose material');
    }

    exitCode = await server.stop('SIGTERM');
    output = server.output();
  });

  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('stops cleanly on SIGTERM (exit code 0)', () => {
    assert.equal(exitCode, 0, output);
  });

  it('keeps every canary out of keyhold.db, -wal, -shm, audit.log and the server output', () => {
    const needles: Array<[string, Buffer]> = [];
    for (const canary of [CANARY_SECRET, CANARY_SECRET_2, CANARY_PLAIN]) {
      needles.push([`${canary} (utf-8)`, Buffer.from(canary, 'utf8')], [`${canary} (base64)`, Buffer.from(b64(canary), 'utf8')]);
    }
    dataKeys.forEach((k, i) => needles.push([`data key ${i} (raw)`, k], [`data key ${i} (base64)`, Buffer.from(k.toString('base64'))]));
    needles.push(['root token', Buffer.from(rootToken, 'utf8')]);

    const haystacks: Array<[string, Buffer]> = [['server output', Buffer.from(output, 'utf8')]];
    for (const name of ['keyhold.db', 'keyhold.db-wal', 'keyhold.db-shm', 'audit.log']) {
      const file = path.join(dataDir, name);
      if (fs.existsSync(file)) haystacks.push([name, fs.readFileSync(file)]);
      else assert.notEqual(name, 'keyhold.db', 'keyhold.db missing');
    }
    assert.ok(haystacks.some(([name]) => name === 'audit.log'), 'audit.log missing');
    assert.ok(fs.statSync(path.join(dataDir, 'audit.log')).size > 0);
    for (const [where, hay] of haystacks) {
      for (const [what, needle] of needles) {
        assert.equal(hay.indexOf(needle), -1, `${what} found in ${where}`);
      }
    }
  });

  it('stores only ciphertext: no kv value parses as JSON except core/seal', () => {
    const db = new Database(path.join(dataDir, 'keyhold.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT key, value FROM kv ORDER BY key').all() as Array<{ key: string; value: Buffer }>;
      assert.ok(rows.length >= keys.length + 5, `only ${rows.length} rows in kv`);
      let seal: Record<string, unknown> | undefined;
      for (const { key, value } of rows) {
        assert.ok(Buffer.isBuffer(value), `${key} is not a blob`);
        let parsed: unknown;
        let isJson = false;
        try {
          parsed = JSON.parse(value.toString('utf8'));
          isJson = true;
        } catch { /* ciphertext: expected */ }
        if (key === 'core/seal') {
          assert.ok(isJson, 'core/seal is not JSON');
          seal = parsed as Record<string, unknown>;
        } else {
          assert.equal(isJson, false, `kv value at ${key} is plaintext JSON: ${value.toString('utf8').slice(0, 200)}`);
          assert.ok(key.startsWith('data/'), `unexpected storage key outside the barrier: ${key}`);
        }
      }
      assert.ok(seal, 'no core/seal record');
      assert.deepEqual(Object.keys(seal).sort(), ['createdAt', 'method', 'rootKeyGeneration', 'sealKeyLabel', 'tokenSerial', 'version', 'wrap', 'wrappedRootKey']);
    } finally {
      db.close();
    }
  });

  it('leaves only sensitive, never-extractable keys in the token (pkcs11js, all objects)', () => {
    const db = new Database(path.join(dataDir, 'keyhold.db'), { readonly: true, fileMustExist: true });
    const record = JSON.parse((db.prepare("SELECT value FROM kv WHERE key = 'core/seal'").pluck().get() as Buffer).toString('utf8')) as { method: string; sealKeyLabel: string; wrap: { mode: string; keyLabel: string } };
    db.close();
    // SoftHSM does AES-GCM: the seal and the wrap key are AES keys in the token.
    assert.equal(record.method, 'aes-gcm');
    assert.equal(record.wrap.mode, 'hsm');
    const seal = { sealKeyLabel: record.sealKeyLabel, wrapKeyLabel: record.wrap.keyLabel };

    const token = openDevToken(dataDir);
    try {
      const { lib, session } = token;
      const objects = allObjects(lib, session);
      assert.equal(objects.length, 3 + hsmKeyVersions, `expected the seal, wrap and audit checkpoint keys + ${hsmKeyVersions} HSM key versions, found ${objects.length}: ${objects.map((o) => o.label).join(', ')}`);
      const labels = objects.map((o) => o.label);
      assert.ok(labels.includes(seal.sealKeyLabel), `seal key ${seal.sealKeyLabel} missing`);
      assert.ok(labels.includes(seal.wrapKeyLabel), `wrap key ${seal.wrapKeyLabel} missing`);
      assert.match(seal.sealKeyLabel, /^keyhold\/seal\/[0-9a-f]+$/);
      assert.match(seal.wrapKeyLabel, /^keyhold\/wrap\/[0-9a-f]+$/);
      const auditKeys = labels.filter((l) => /^keyhold\/audit\/[0-9a-f]+$/.test(l));
      assert.equal(auditKeys.length, 1, 'one audit checkpoint signing key');
      const keyLabels = labels.filter((l) => l !== seal.sealKeyLabel && l !== seal.wrapKeyLabel && !auditKeys.includes(l));
      for (const label of keyLabels) assert.match(label, /^keyhold\/key\/[0-9a-f]{24}\/v\d+$/);
      assert.equal(keyLabels.filter((l) => l.endsWith('/v2')).length, 1);
      assert.equal(new Set(labels).size, labels.length, 'duplicate labels');

      const byType = (t: number) => objects.filter((o) => o.keyType === t).length;
      assert.equal(byType(pkcs11.CKK_AES), 2 + 2, 'AES objects: seal, wrap, aes256-gcm-hsm v1 and v2');
      assert.equal(byType(pkcs11.CKK_GENERIC_SECRET), 1);
      assert.equal(byType(pkcs11.CKK_EC), 2 + 1, 'EC objects: two user keys and the audit checkpoint key');
      assert.equal(byType(pkcs11.CKK_RSA), 3);

      const flag = (handle: Buffer, type: number) => {
        const value = lib.C_GetAttributeValue(session, handle, [{ type }])[0]?.value as Buffer;
        return value.length > 0 && value[0] !== 0;
      };
      for (const object of objects) {
        const what = `${object.label} (class ${object.cls}, key type ${object.keyType})`;
        assert.ok(object.cls === pkcs11.CKO_SECRET_KEY || object.cls === pkcs11.CKO_PRIVATE_KEY, `${what} is not a secret or private key`);
        assert.equal(flag(object.handle, pkcs11.CKA_TOKEN), true, `${what} CKA_TOKEN`);
        assert.equal(flag(object.handle, pkcs11.CKA_PRIVATE), true, `${what} CKA_PRIVATE`);
        assert.equal(flag(object.handle, pkcs11.CKA_SENSITIVE), true, `${what} CKA_SENSITIVE`);
        assert.equal(flag(object.handle, pkcs11.CKA_ALWAYS_SENSITIVE), true, `${what} CKA_ALWAYS_SENSITIVE`);
        assert.equal(flag(object.handle, pkcs11.CKA_EXTRACTABLE), false, `${what} CKA_EXTRACTABLE`);
        assert.equal(flag(object.handle, pkcs11.CKA_NEVER_EXTRACTABLE), true, `${what} CKA_NEVER_EXTRACTABLE`);
        const secretAttributes = object.keyType === pkcs11.CKK_RSA
          ? [pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2]
          : [pkcs11.CKA_VALUE];
        for (const type of secretAttributes) {
          assert.throws(
            () => lib.C_GetAttributeValue(session, object.handle, [{ type }]),
            (err: Error) => /CKR_ATTRIBUTE_SENSITIVE/.test(err.message),
            `${what}: attribute 0x${type.toString(16)} was readable`,
          );
        }
      }
    } finally {
      token.close();
    }
  });

  it('leaves only sensitive, never-extractable keys in the token (pkcs11-tool --list-objects)', () => {
    const listed = pkcs11ToolListObjects(dataDir);
    assert.equal(listed.status, 0, listed.stderr);
    const objects = parseListedObjects(listed.stdout);
    assert.equal(objects.length, 3 + hsmKeyVersions, `unexpected object count in:\n${listed.stdout}`);
    assert.equal(objects.filter((o) => /^Public Key Object/.test(o.header)).length, 0, 'public key objects remain');
    assertOnlyNonExtractableKeys(objects);
  });
});
