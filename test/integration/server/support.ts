/** Shared bits of the server-level integration tests (not a test file itself). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pkcs11 from 'pkcs11js';
import { DATA_PREFIX } from '../../../src/barrier/barrier.js';
import { recordGeneration } from '../../../src/barrier/record.js';
import { findSoftHsmModule } from '../../../src/hsm/softhsm.js';
import { pkcs11Tool } from '../../helpers/pkcs11-tool.js';
import { inParallel } from '../../helpers/pool.js';
import { call, CLI, type DevServer } from '../../helpers/server.js';

export const DEV_TOKEN_LABEL = 'keyhold-dev';

export function readPinFile(dataDir: string): string {
  return fs.readFileSync(path.join(dataDir, 'hsm-pin'), 'utf8').replace(/\r?\n$/, '');
}

export function sha256File(file: string): string | null {
  return fs.existsSync(file) ? createHash('sha256').update(fs.readFileSync(file)).digest('hex') : null;
}

/** The SoftHSM2 module, found the way `keyhold dev` finds it. */
export const softHsmModule = findSoftHsmModule;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the CLI and kills it (SIGKILL) if it is still running after `timeoutMs`; for commands that
 * must fail fast (a `keyhold server` that starts would otherwise serve forever).
 */
export function runCliTimed(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 10_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export interface TokenObject {
  handle: Buffer;
  cls: number;
  keyType: number;
  label: string;
}

/**
 * Opens the dev token of `dataDir` in this process with pkcs11js (SOFTHSM2_CONF from the data dir)
 * and logs in. The caller must not have the module loaded otherwise; `close()` finalises it.
 */
export function openDevToken(dataDir: string, label = DEV_TOKEN_LABEL): { lib: pkcs11.PKCS11; session: Buffer; close(): void } {
  process.env.SOFTHSM2_CONF = path.join(dataDir, 'softhsm2.conf');
  const lib = new pkcs11.PKCS11();
  lib.load(softHsmModule());
  lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.replace(/[\s\0]+$/, '') === label);
    if (!slot) throw new Error(`token ${label} not found`);
    const session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
    lib.C_Login(session, pkcs11.CKU_USER, readPinFile(dataDir));
    return {
      lib,
      session,
      close() {
        try { lib.C_CloseAllSessions(slot); } catch { /* closing anyway */ }
        lib.C_Finalize();
        lib.close();
      },
    };
  } catch (err) {
    lib.C_Finalize();
    lib.close();
    throw err;
  }
}

/**
 * Every object on the token the session can see (C_FindObjectsInit with an empty template).
 * `tolerateTorn`: an object SoftHSM was writing when its process was killed can fail attribute reads;
 * it is then listed with cls -1 instead of failing the whole listing (crash tests count them).
 */
export function allObjects(lib: pkcs11.PKCS11, session: Buffer, options: { tolerateTorn?: boolean } = {}): TokenObject[] {
  lib.C_FindObjectsInit(session, []);
  const handles: Buffer[] = [];
  try {
    for (;;) {
      const batch = lib.C_FindObjects(session, 64);
      if (batch.length === 0) break;
      handles.push(...batch);
    }
  } finally {
    lib.C_FindObjectsFinal(session);
  }
  return handles.map((handle) => {
    if (!options.tolerateTorn) return describeObject(lib, session, handle);
    try {
      return describeObject(lib, session, handle);
    } catch {
      return { handle, cls: -1, keyType: -1, label: '' };
    }
  });
}

function describeObject(lib: pkcs11.PKCS11, session: Buffer, handle: Buffer): TokenObject {
  const [cls, label] = lib.C_GetAttributeValue(session, handle, [{ type: pkcs11.CKA_CLASS }, { type: pkcs11.CKA_LABEL }]);
  const clsValue = (cls?.value as Buffer).readUInt32LE(0);
  let keyType = -1;
  if (clsValue === pkcs11.CKO_SECRET_KEY || clsValue === pkcs11.CKO_PRIVATE_KEY || clsValue === pkcs11.CKO_PUBLIC_KEY) {
    keyType = (lib.C_GetAttributeValue(session, handle, [{ type: pkcs11.CKA_KEY_TYPE }])[0]?.value as Buffer).readUInt32LE(0);
  }
  return { handle, cls: clsValue, keyType, label: (label?.value as Buffer | undefined)?.toString('utf8') ?? '' };
}

export { parseListedObjects, type ListedObject } from '../../helpers/pkcs11-tool.js';

export function pkcs11ToolListObjects(dataDir: string): { status: number | null; stdout: string; stderr: string } {
  return pkcs11Tool(softHsmModule(), path.join(dataDir, 'softhsm2.conf'), ['--token-label', DEV_TOKEN_LABEL, '--login', '--pin', readPinFile(dataDir), '--list-objects']);
}

/** Generation of every barrier record in the SQLite file, read raw (the server may be running: WAL readers are fine). */
export function storedGenerations(dbFile: string): Map<string, number> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ?').all(DATA_PREFIX, 'data0') as Array<{ key: string; value: Buffer }>;
    return new Map(rows.map((r) => [r.key, recordGeneration(r.key.slice(DATA_PREFIX.length), r.value)]));
  } finally {
    db.close();
  }
}

/** The seal record (core/seal, JSON) of the SQLite file, read raw. */
export function storedSealRecord(dbFile: string): Record<string, any> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return JSON.parse((db.prepare("SELECT value FROM kv WHERE key = 'core/seal'").pluck().get() as Buffer).toString('utf8'));
  } finally {
    db.close();
  }
}

/** A root-token call that must answer 200; its body. */
export async function ok(server: DevServer, method: string, route: string, body?: unknown): Promise<any> {
  const r = await call(server.address, method, route, server.rootToken, body);
  assert.equal(r.status, 200, `${method} ${route}: ${r.status} ${r.text}`);
  return r.body;
}

/** What a test wrote to a store, to read back after a rotation, restore or migration: secrets by path, ciphertexts of PLAINTEXT by key. */
export interface Written { secrets: Map<string, string>; ciphertexts: Array<{ key: string; ciphertext: string }> }
export const PLAINTEXT = Buffer.from('written, then read back').toString('base64');

/** `count` secrets under `tag/` (8 at a time) and one ciphertext of PLAINTEXT under each of `keys`, recorded in `written`. */
export async function writeSome(server: DevServer, written: Written, tag: string, count: number, keys: readonly string[]): Promise<void> {
  await inParallel(Array.from({ length: count }, (_, i) => i), 8, async (i) => {
    const p = `${tag}/s-${i}`;
    await ok(server, 'PUT', `/v1/secrets/${p}`, { data: { v: p } });
    written.secrets.set(p, p);
  });
  for (const key of keys) written.ciphertexts.push({ key, ciphertext: (await ok(server, 'POST', `/v1/keys/${key}/encrypt`, { plaintext: PLAINTEXT })).ciphertext });
}

/** Every secret and ciphertext in `written` reads back as written (all secrets' problems reported together). */
export async function readBack(server: DevServer, written: Written): Promise<void> {
  const problems: string[] = [];
  await inParallel([...written.secrets], 8, async ([p, v]) => {
    const r = await call(server.address, 'GET', `/v1/secrets/${p}`, server.rootToken);
    if (r.body?.data?.v !== v) problems.push(`${p}: ${r.status} ${r.text}`);
  });
  assert.deepEqual(problems, []);
  for (const { key, ciphertext } of written.ciphertexts) {
    assert.equal((await ok(server, 'POST', `/v1/keys/${key}/decrypt`, { ciphertext })).plaintext, PLAINTEXT, key);
  }
}
