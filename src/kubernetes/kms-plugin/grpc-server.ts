/**
 * The gRPC edge: KMS v2 messages in, typed calls to KmsService, gRPC statuses out (through the one
 * map in grpc-status.ts). Nothing here knows about keys or HSMs.
 */
import { chmodSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { KeyholdError } from '../../errors.js';
import { grpcFailure } from './grpc-status.js';
import type { KmsService } from './kms-service.js';
import type { EncryptResult } from './local-kek.js';
import type { KmsMetrics } from './metrics.js';
import { prepareSocketPath, removeSocketFile, type SocketAddress } from './socket.js';

/** Annotations ≤ 32 KiB and a ciphertext ≤ 1 KiB: anything much larger is refused by grpc-js itself. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** The .proto sits beside the compiled file when copied there, else in the source tree. */
export function protoPath(): string {
  const candidates = [new URL('./kms-v2.proto', import.meta.url), new URL('../../../../src/kubernetes/kms-plugin/kms-v2.proto', import.meta.url)];
  const found = candidates.map((u) => fileURLToPath(u)).find((p) => existsSync(p));
  if (!found) throw new Error('kms-v2.proto not found beside the plugin or in src/');
  return found;
}

export interface KmsProto {
  KeyManagementService: grpc.ServiceClientConstructor;
}

export function loadKmsProto(): KmsProto {
  const definition = protoLoader.loadSync(protoPath(), { keepCase: true, longs: String, enums: String, defaults: true });
  return (grpc.loadPackageDefinition(definition) as unknown as { v2: KmsProto }).v2;
}

export interface GrpcLog {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** A request body that is not valid protobuf for its message: answered INVALID_ARGUMENT by the handler. */
class Malformed {
  constructor(readonly error: KeyholdError) {}
}

/**
 * grpc-js answers a body its deserializer cannot decode with INTERNAL. The contract's client is
 * kube-apiserver, but whatever reaches the socket gets a clean INVALID_ARGUMENT instead.
 */
function tolerantDeserializers(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const wrapped: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    wrapped[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch {
          return new Malformed(new KeyholdError('ERR_BAD_REQUEST', `the ${name} request is not a valid KMS v2 ${name}Request message`));
        }
      },
    };
  }
  return wrapped as grpc.ServiceDefinition;
}

interface EncryptRequest { plaintext: Buffer; uid: string }
interface DecryptRequest { ciphertext: Buffer; uid: string; key_id: string; annotations: Record<string, Buffer> }

/** Logs carry the apiserver's per-call uid, trimmed: it is for correlation only and comes from outside. */
const uidOf = (uid: unknown): string => (typeof uid === 'string' ? uid.slice(0, 64) : '');

export async function serveGrpc(service: KmsService, address: SocketAddress, metrics: KmsMetrics, log: GrpcLog): Promise<{ close(): Promise<void> }> {
  const proto = loadKmsProto();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });

  /** Handlers may answer synchronously (the steady-state Encrypt and Decrypt do): no promise per call then. */
  function unary<Req, Res>(method: string, handle: (request: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    // Label children resolved once: prom-client hashes a label object on every call otherwise.
    const latency = metrics.latency.labels(method);
    const ok = metrics.calls.labels(method, 'OK');
    return (call, callback) => {
      const started = performance.now();
      const succeed = (response: Res) => {
        latency.observe((performance.now() - started) / 1000);
        ok.inc();
        callback(null, response);
      };
      const fail = (err: unknown) => {
        latency.observe((performance.now() - started) / 1000);
        const failure = grpcFailure(err);
        metrics.calls.inc({ method, code: failure.keyholdCode });
        const fields = { method, uid: uidOf((call.request as { uid?: unknown } | null)?.uid), code: failure.keyholdCode };
        if (failure.keyholdCode === 'ERR_INTERNAL') log.error({ ...fields, err }, 'KMS call failed');
        else log.warn({ ...fields, reason: failure.details }, 'KMS call refused');
        callback({ code: failure.code, details: failure.details });
      };
      let result: Res | Promise<Res>;
      try {
        const request = call.request as Req | Malformed;
        if (request instanceof Malformed) throw request.error;
        result = handle(request);
      } catch (err) {
        fail(err);
        return;
      }
      if (result instanceof Promise) result.then(succeed, fail);
      else succeed(result);
    };
  }

  server.addService(tolerantDeserializers(proto.KeyManagementService.service), {
    Status: unary('Status', async () => {
      const s = await service.status();
      return { version: s.version, healthz: s.healthz, key_id: s.keyId };
    }),
    Encrypt: unary('Encrypt', (request: EncryptRequest) => {
      const toReply = (r: EncryptResult) => ({ ciphertext: r.ciphertext, key_id: r.keyId, annotations: r.annotations });
      const result = service.encrypt(request.plaintext);
      return result instanceof Promise ? result.then(toReply) : toReply(result);
    }),
    Decrypt: unary('Decrypt', (request: DecryptRequest) => {
      const result = service.decrypt({ ciphertext: request.ciphertext, keyId: request.key_id, annotations: request.annotations });
      return result instanceof Promise ? result.then((plaintext) => ({ plaintext })) : { plaintext: result };
    }),
  });

  if (address.path) await prepareSocketPath(address.path);
  // The socket is created owner-only (umask during bind), then pinned to 0600 in case the umask was ignored.
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<number>((resolve, reject) => server.bindAsync(address.grpc, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  } finally {
    process.umask(previousUmask);
  }
  if (address.path) chmodSync(address.path, 0o600);

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= new Promise<void>((resolve) => {
        // In-flight calls finish; a stuck one is cut after 5 s.
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          removeSocketFile(address.path);
          resolve();
        });
      });
      return closing;
    },
  };
}
