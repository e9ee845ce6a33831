/**
 * The ceiling for operator logins: a bare fastify server doing only a login's essential work per
 * request — the same scrypt verification (OWASP's N=2^15, r=8, p=3) of the password, and the same
 * TOTP check (otplib, ±1 step). No lockout, no replay record, no token, no audit.
 */
import Fastify from 'fastify';
import { verify } from 'otplib';
import { HashLimiter } from '../src/operators/hash-limit.js';
import { hashPassword, verifyPassword } from '../src/operators/password-hash.js';

const [password, secret] = [process.env.CEILING_PASSWORD, process.env.CEILING_TOTP_SECRET];
if (!password || !secret) throw new Error('usage: CEILING_PASSWORD=… CEILING_TOTP_SECRET=… operator-login-ceiling-server');
// Unbounded but for libuv's pool: a bare server would not limit its hashing.
const limiter = new HashLimiter(1024, 0);
const stored = await hashPassword(password, limiter);
const app = Fastify({ logger: false });
app.post('/login', async (req, reply) => {
  const body = req.body as { password: string; totp: string };
  const passwordOk = await verifyPassword(stored, body.password, limiter);
  const totp = await verify({ secret, token: body.totp, epochTolerance: 30 });
  if (!passwordOk || !totp.valid) return reply.code(401).send({ error: 'login failed' });
  return { ok: true };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`ceiling listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
