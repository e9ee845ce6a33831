/**
 * Fuzzing the plugin's gRPC surface: seeded random Encrypt and Decrypt requests (sizes, bytes,
 * key_ids, annotations, mutations of real replies) and raw random protobuf bodies. Every answer
 * must be a success or a clean gRPC error with a keyhold code — never INTERNAL, never a crash —
 * and the plugin must still be healthy afterwards.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { startKmsPlugin, type RunningKmsPlugin } from '../../../src/kubernetes/kms-plugin/plugin.js';
import { KmsTestClient, type EncryptReply, type GrpcError } from '../../helpers/kms-client.js';
import { tempDir } from '../../helpers/server.js';
import { makeSoftHsmToken } from '../../helpers/softhsm.js';

const token = makeSoftHsmToken('kms-fuzz');
const work = tempDir('keyhold-kms-fuzz-');
const ROUNDS = Number(process.env.KMS_FUZZ_ROUNDS ?? 3000);

/** mulberry32: a small seeded generator, so a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CLEAN = new Set([grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.RESOURCE_EXHAUSTED]);

describe('kms-plugin fuzz', () => {
  let p: RunningKmsPlugin;
  let client: KmsTestClient;
  let raw: grpc.Client;
  const valid: EncryptReply[] = [];

  before(async () => {
    p = await startKmsPlugin({ listen: join(work, 'fuzz.sock'), rootKey: { mode: 'direct', hsm: token.config, keyLabel: 'fuzz' }, logger: pino({ level: 'silent' }) });
    client = new KmsTestClient(p.socket.grpc);
    raw = new grpc.Client(p.socket.grpc, grpc.credentials.createInsecure());
    for (let i = 0; i < 20; i++) valid.push(await client.encrypt(Buffer.alloc(32, i)));
  });
  after(async () => {
    client.close();
    raw.close();
    await p.close();
  });

  it(`${ROUNDS} random Encrypt/Decrypt requests: only successes and clean errors`, async () => {
    const seed = Number(process.env.KMS_FUZZ_SEED ?? 0x6b6d73);
    const next = rng(seed);
    const int = (n: number) => Math.floor(next() * n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    const size = () => [0, 1, 31, 32, 33, 995, 996, 1024, 1025, 5000, 40_000][int(11)] as number;
    const annotationKey = () => ['kek.keyhold.io', 'other.example.com', 'a.b', 'NOT FQDN', '', 'x'.repeat(300), 'kek.keyhold.io.', '-bad.example.com'][int(8)] as string;
    const outcomes = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const kind = int(4);
      let call: Promise<unknown>;
      if (kind === 0) {
        call = client.encrypt(bytes(size()), bytes(int(40)).toString('latin1'));
      } else if (kind === 1) {
        const annotations: Record<string, Buffer> = {};
        for (let i = int(3); i > 0; i--) annotations[annotationKey()] = bytes(int(3) === 0 ? size() : int(100));
        call = client.decrypt({ ciphertext: bytes(size()), key_id: [valid[0]?.key_id as string, '', 'x'.repeat(int(2000)), bytes(20).toString('latin1')][int(4)] as string, annotations });
      } else if (kind === 2) {
        // A real reply with one part mutated.
        const base = valid[int(valid.length)] as EncryptReply;
        const mutated = { ciphertext: Buffer.from(base.ciphertext), key_id: base.key_id, annotations: { ...base.annotations } };
        const part = int(3);
        if (part === 0) {
          const at = int(mutated.ciphertext.length);
          mutated.ciphertext[at] = (mutated.ciphertext[at] as number) ^ (1 << int(8));
        }
        else if (part === 1) {
          const a = Buffer.from(mutated.annotations['kek.keyhold.io'] as Buffer);
          const at = int(a.length);
          a[at] = (a[at] as number) ^ (1 << int(8));
          mutated.annotations['kek.keyhold.io'] = a;
        } else mutated.key_id = mutated.key_id.slice(0, -1) + (mutated.key_id.endsWith('A') ? 'B' : 'A');
        call = client.decrypt(mutated);
      } else {
        // Raw bytes as the request body: the protobuf decoder is part of the surface.
        const method = ['/v2.KeyManagementService/Encrypt', '/v2.KeyManagementService/Decrypt', '/v2.KeyManagementService/Status'][int(3)] as string;
        const body = bytes(int(3) === 0 ? size() : int(64));
        call = new Promise((resolve, reject) => raw.makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, body, (err, res) => (err ? reject(err) : resolve(res))));
      }
      let code: grpc.status = grpc.status.OK;
      try {
        await call;
      } catch (err) {
        code = (err as GrpcError).code;
        assert.ok(CLEAN.has(code), `seed ${seed} round ${round} kind ${kind}: unclean error ${grpc.status[code]}: ${(err as GrpcError).details}`);
        assert.ok((err as GrpcError).details.length > 0, 'errors say what was wrong');
      }
      // A mutated real reply that still decrypts would be tampering that went unnoticed.
      if (kind === 2) assert.notEqual(code, grpc.status.OK, `seed ${seed} round ${round}: a mutated ciphertext, annotation or key_id was accepted`);
      outcomes.set(`${kind}:${grpc.status[code]}`, (outcomes.get(`${kind}:${grpc.status[code]}`) ?? 0) + 1);
    }
    // The fuzzer reached both sides: accepted and refused requests.
    assert.ok([...outcomes.keys()].some((k) => k.endsWith(':OK')));
    assert.ok([...outcomes.keys()].some((k) => k.endsWith(':INVALID_ARGUMENT')));
    assert.equal((await client.status()).healthz, 'ok');
    for (const [i, reply] of valid.entries()) assert.deepEqual(await client.decrypt(reply), Buffer.alloc(32, i));
  });
});
