/**
 * The ceiling for the plugin bench: a bare grpc-js server with the same KMS v2 service on the same
 * kind of unix socket, doing no work. Its replies have the same shape and sizes as the plugin's
 * (a 61-byte ciphertext, a 51-character key_id, one 61-byte annotation; a 32-byte plaintext), so
 * both sides pay the same for transport and protobuf, and the ratio isolates the plugin's own work.
 */
import * as grpc from '@grpc/grpc-js';
import { loadKmsProto } from '../src/kubernetes/kms-plugin/grpc-server.js';

const path = process.argv[2];
if (!path) throw new Error('usage: kms-echo-server SOCKET');
const encryptReply = { ciphertext: Buffer.alloc(61, 1), key_id: `keyhold-${'e'.repeat(43)}`, annotations: { 'kek.keyhold.io': Buffer.alloc(61, 2) } };
const server = new grpc.Server();
server.addService(loadKmsProto().KeyManagementService.service, {
  Status: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { version: 'v2', healthz: 'ok', key_id: encryptReply.key_id }),
  Encrypt: (_call: grpc.ServerUnaryCall<{ plaintext: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, encryptReply),
  // The apiserver's DEK seeds are 32 bytes: reply with as many.
  Decrypt: (call: grpc.ServerUnaryCall<{ ciphertext: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { plaintext: call.request.ciphertext.subarray(0, 32) }),
});
server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write('echo listening\n');
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
