/**
 * The ceiling: bare fastify routes doing only the essential work of each keyhold request, with
 * none of auth, policy, audit, versioning or schemas. keyhold's figures are quoted as a ratio of
 * these, measured in the same run on the same machine.
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import { aesGcmOpen, aesGcmSeal } from '../src/crypto/aead.js';
import { Pkcs11Hsm } from '../src/hsm/pkcs11-hsm.js';
import { provisionSoftHsmToken } from '../src/hsm/softhsm.js';
import { SqliteStorage } from '../src/storage/sqlite.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: ceiling-server DIR');

const token = provisionSoftHsmToken(dir, 'ceiling');
const hsm = await Pkcs11Hsm.open({ module: token.module, tokenLabel: 'ceiling', pinFile: token.pinFile });
const hsmKey = hsm.findKey('ceiling-aes', 'aes256') ?? (await hsm.generateKey('ceiling-aes', 'aes256'));
const key = createSecretKey(randomBytes(32));
const storage = SqliteStorage.open(join(dir, 'ceiling.db'));
const aad = Buffer.from('bench');
const record = Buffer.from(JSON.stringify({ data: { username: 'app', password: randomBytes(24).toString('base64') }, version: 1 }));
await storage.put('secret', aesGcmSeal(key, record, aad));

/**
 * The essential durability of a write: one audit line per request on disk before it is answered,
 * group-committed (every line queued while a write+fdatasync is in flight shares the next one).
 */
const auditFile = await open(join(dir, 'ceiling-audit.log'), 'a');
let queued: Array<{ line: string; done: () => void }> = [];
let flushing = false;
async function flushAudit(): Promise<void> {
  flushing = true;
  while (queued.length > 0) {
    const batch = queued;
    queued = [];
    await auditFile.write(batch.map((b) => b.line).join(''));
    await auditFile.datasync();
    for (const b of batch) b.done();
  }
  flushing = false;
}
function appendAudit(line: string): Promise<void> {
  return new Promise((done) => {
    queued.push({ line, done });
    if (!flushing) void flushAudit();
  });
}

const app = Fastify({ logger: false });
app.post('/encrypt-node', async (req) => {
  const { plaintext } = req.body as { plaintext: string };
  return { ciphertext: aesGcmSeal(key, Buffer.from(plaintext, 'base64'), aad).toString('base64') };
});
app.post('/encrypt-hsm', async (req) => {
  const { plaintext } = req.body as { plaintext: string };
  return { ciphertext: (await hsm.aesGcmEncrypt(hsmKey, Buffer.from(plaintext, 'base64'), aad)).toString('base64') };
});
app.get('/secret', async () => {
  const raw = await storage.get('secret');
  return JSON.parse(aesGcmOpen(key, raw as Buffer, aad).toString('utf8')) as unknown;
});
// A new secret: the record sealed under the root key, one durable storage write (SQLite,
// synchronous=FULL, group-committed), one durable audit line. No auth, policy, versions or schema.
app.put('/secret/:n', async (req) => {
  const path = `secret/${(req.params as { n: string }).n}`;
  const sealed = aesGcmSeal(key, Buffer.from(JSON.stringify({ data: (req.body as { data: unknown }).data, version: 1 })), Buffer.from(path));
  await storage.put(path, sealed);
  await appendAudit(`${JSON.stringify({ op: 'write', path })}\n`);
  return { version: 1 };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`ceiling listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => {
  void app.close().then(async () => {
    await storage.close();
    await auditFile.close();
    await hsm.close();
    process.exit(0);
  });
});
