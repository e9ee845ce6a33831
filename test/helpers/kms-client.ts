import * as grpc from '@grpc/grpc-js';
import { loadKmsProto } from '../../src/kubernetes/kms-plugin/grpc-server.js';

export interface EncryptReply { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> }
export interface GrpcError extends Error { code: grpc.status; details: string }

/** A KMS v2 client as kube-apiserver is one: unary calls over the plugin's unix socket. */
export class KmsTestClient {
  readonly #client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  constructor(grpcAddress: string) {
    const Service = loadKmsProto().KeyManagementService;
    this.#client = new Service(grpcAddress, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 8 * 1024 * 1024 }) as never;
  }

  #unary<T>(method: string, request: unknown, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.#client[method] as (req: unknown, opts: object, cb: (err: GrpcError | null, res: T) => void) => void)
        .call(this.#client, request, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  status(): Promise<{ version: string; healthz: string; key_id: string }> {
    return this.#unary('Status', {});
  }

  encrypt(plaintext: Buffer, uid = 'test'): Promise<EncryptReply> {
    return this.#unary('Encrypt', { plaintext, uid });
  }

  decrypt(reply: { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> }, uid = 'test'): Promise<Buffer> {
    return this.#unary<{ plaintext: Buffer }>('Decrypt', { ciphertext: reply.ciphertext, key_id: reply.key_id, annotations: reply.annotations, uid }).then((r) => r.plaintext);
  }

  close(): void {
    this.#client.close();
  }
}
