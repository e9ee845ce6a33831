/**
 * The ceiling for the plugin bench: a bare grpc-js server with the same KMS v2 service on the same
 * kind of unix socket, answering each call with its input and doing nothing else.
 */
import * as grpc from '@grpc/grpc-js';
import { loadKmsProto } from '../src/kubernetes/kms-plugin/grpc-server.js';

const path = process.argv[2];
if (!path) throw new Error('usage: kms-echo-server SOCKET');
const server = new grpc.Server();
server.addService(loadKmsProto().KeyManagementService.service, {
  Status: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { version: 'v2', healthz: 'ok', key_id: 'echo' }),
  Encrypt: (call: grpc.ServerUnaryCall<{ plaintext: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { ciphertext: call.request.plaintext, key_id: 'echo', annotations: {} }),
  Decrypt: (call: grpc.ServerUnaryCall<{ ciphertext: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { plaintext: call.request.ciphertext }),
});
server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write('echo listening\n');
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
