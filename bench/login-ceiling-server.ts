/**
 * The ceiling for the start-up storm: a bare fastify server answering the same requests with only
 * their essential work — verify the login JWT with jose against the cluster's keys (JWKS read once),
 * and decrypt one stored record per secret read. No roles, no live checks, no policies, no audit.
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { aesGcmOpen, aesGcmSeal } from '../src/crypto/aead.js';
import { SqliteStorage } from '../src/storage/sqlite.js';

const [dir, issuer, jwksJson] = [process.argv[2], process.argv[3], process.env.CEILING_JWKS];
if (!dir || !issuer || !jwksJson) throw new Error('usage: CEILING_JWKS=<json> login-ceiling-server DIR ISSUER');
const keys = createLocalJWKSet(JSON.parse(jwksJson) as JSONWebKeySet);
const key = createSecretKey(randomBytes(32));
const storage = SqliteStorage.open(join(dir, 'ceiling.db'));
for (let i = 0; i < 5; i++) {
  await storage.put(`secret/s${i}`, aesGcmSeal(key, Buffer.from(JSON.stringify({ data: { value: `v${i}` }, version: 1 })), Buffer.from(`s${i}`)));
}
const app = Fastify({ logger: false });
app.post('/login', async (req) => {
  const { jwt } = req.body as { jwt: string };
  await jwtVerify(jwt, keys, { issuer, audience: 'keyhold' });
  return { token: randomBytes(32).toString('base64url') };
});
app.get('/secret/:name', async (req) => {
  const { name } = req.params as { name: string };
  return JSON.parse(aesGcmOpen(key, (await storage.get(`secret/${name}`)) as Buffer, Buffer.from(name)).toString('utf8')) as unknown;
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`ceiling listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
