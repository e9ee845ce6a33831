/**
 * How should HSM calls be dispatched so they do not stall the event loop? Compares, on the same
 * SoftHSM token and AES-GCM key: synchronous calls on the main thread, pkcs11js' *Async calls on
 * libuv's pool (what keyhold uses, via Pkcs11Hsm), and worker threads doing synchronous calls.
 * Reports throughput and the main thread's event-loop delay (p99) while under load.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pkcs11 from 'pkcs11js';
import { Pkcs11Hsm } from '../src/hsm/pkcs11-hsm.js';
import { provisionSoftHsmToken } from '../src/hsm/softhsm.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONCURRENCY = 64;
const dir = mkdtempSync(join(process.env.KEYHOLD_TEST_TMP ?? tmpdir(), 'keyhold-dispatch-'));
const token = provisionSoftHsmToken(dir, 'dispatch');
const hsm = await Pkcs11Hsm.open({ module: token.module, tokenLabel: 'dispatch', pinFile: token.pinFile, sessions: 4 });
const key = await hsm.generateKey('dispatch-aes', 'aes256');
const plaintext = randomBytes(32);
const aad = Buffer.from('bench');

async function measure(name: string, op: () => Promise<unknown>): Promise<Record<string, unknown>> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  // A timer that should fire every millisecond: how late it runs is what other requests would feel.
  delay.enable();
  let done = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < end) {
      await op();
      done++;
      // Back to the event loop between "requests", as a server does; otherwise a synchronous
      // loop would starve the delay monitor itself and report nothing.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }));
  delay.disable();
  return { mode: name, ops_per_s: Math.round(done / SECONDS), loop_delay_p99_ms: Number((delay.percentile(99) / 1e6).toFixed(2)), loop_delay_max_ms: Number((delay.max / 1e6).toFixed(2)) };
}

// 1. Synchronous calls on the main thread (one session): every call blocks the event loop.
const lib = new pkcs11.PKCS11();
lib.load(token.module);
try { lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK }); } catch { /* already initialised by Pkcs11Hsm */ }
const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === 'dispatch') as Buffer;
const session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
// HsmKey names the key by label only: this bench looks its handle up itself. (Token objects have the same handle in every session of one process.)
lib.C_FindObjectsInit(session, [{ type: pkcs11.CKA_LABEL, value: key.label }, { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_SECRET_KEY }]);
const keyHandle = lib.C_FindObjects(session, 1)[0] as Buffer;
lib.C_FindObjectsFinal(session);
const syncEncrypt = () => {
  const iv = randomBytes(12);
  lib.C_EncryptInit(session, { mechanism: pkcs11.CKM_AES_GCM, parameter: { type: pkcs11.CK_PARAMS_AES_GCM_v240, iv, ivBits: 96, aad, tagBits: 128 } as pkcs11.GcmParams }, keyHandle);
  return lib.C_Encrypt(session, plaintext, Buffer.alloc(plaintext.length + 16));
};

// 3. Worker threads, each with its own session, doing synchronous calls.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { randomBytes } = require('node:crypto');
const pkcs11 = require(workerData.pkcs11Path);
const lib = new pkcs11.PKCS11();
lib.load(workerData.module);
try { lib.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK }); } catch {}
const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === 'dispatch');
const session = lib.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
const key = Buffer.from(workerData.handle);
const aad = Buffer.from('bench');
parentPort.on('message', ({ id, data }) => {
  const iv = randomBytes(12);
  lib.C_EncryptInit(session, { mechanism: pkcs11.CKM_AES_GCM, parameter: { type: pkcs11.CK_PARAMS_AES_GCM_v240, iv, ivBits: 96, aad, tagBits: 128 } }, key);
  const out = lib.C_Encrypt(session, Buffer.from(data), Buffer.alloc(data.length + 16));
  parentPort.postMessage({ id, out });
});`;
const { createRequire } = await import('node:module');
const pkcs11Path = createRequire(import.meta.url).resolve('pkcs11js');
const workers = Array.from({ length: 2 }, () => new Worker(workerSource, { eval: true, workerData: { module: token.module, handle: keyHandle, pkcs11Path } }));
const pending = new Map<number, (out: Buffer) => void>();
for (const w of workers) w.on('message', ({ id, out }: { id: number; out: Buffer }) => { pending.get(id)?.(out); pending.delete(id); });
let nextId = 0;
const workerEncrypt = () => new Promise<Buffer>((resolve) => {
  const id = nextId++;
  pending.set(id, resolve);
  (workers[id % workers.length] as Worker).postMessage({ id, data: plaintext });
});

const results = [
  await measure('sync on main thread, 1 session', async () => syncEncrypt()),
  await measure('pkcs11js async (libuv pool), 4 sessions [keyhold]', () => hsm.aesGcmEncrypt(key, plaintext, aad)),
  await measure('2 worker threads, sync calls', workerEncrypt),
];
console.log(JSON.stringify({ operation: 'SoftHSM AES-256-GCM encrypt, 32 B', concurrency: CONCURRENCY, seconds: SECONDS, results }, null, 2));
await Promise.all(workers.map((w) => w.terminate()));
lib.C_CloseSession(session);
await hsm.close();
rmSync(dir, { recursive: true, force: true });
