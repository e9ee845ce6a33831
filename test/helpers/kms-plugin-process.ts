import type { ChildProcess } from 'node:child_process';
import { spawnUntilReady } from './processes.js';
import { CLI } from './server.js';
import type { SoftHsmTestToken } from './softhsm.js';

export interface PluginProcess {
  child: ChildProcess;
  healthUrl: string;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `keyhold kms-plugin` in direct mode as a real child process; resolves once it serves its socket. */
export async function startPluginProcess(options: { socket: string; token: SoftHsmTestToken; keyLabel: string; pinFile?: string; extraArgs?: string[] }): Promise<PluginProcess> {
  const { token } = options;
  const started = await spawnUntilReady('kms-plugin', process.execPath, [
    CLI, 'kms-plugin', '--listen', options.socket, '--health-listen', '127.0.0.1:0',
    '--hsm-module', token.module, '--hsm-token-label', token.label, '--hsm-pin-file', options.pinFile ?? token.pinFile, '--key-label', options.keyLabel,
    ...(options.extraArgs ?? []),
  ], { env: { SOFTHSM2_CONF: token.confPath }, ready: /"health":"(http:\/\/[^"]+)"[^\n]*"msg":"KMS v2 plugin listening"/ });
  return { child: started.child, healthUrl: started.ready[1] as string, output: started.output, stop: started.stop };
}

/** Reads the fields of kube-apiserver's stored EncryptedObject (after the `k8s:enc:kms:v2:<name>:` prefix). */
export function decodeEncryptedObject(bytes: Buffer): { encryptedData: Buffer; keyID: string; annotations: Record<string, Buffer> } {
  const fields = readMessage(bytes);
  const annotations: Record<string, Buffer> = {};
  for (const entry of fields.filter((f) => f.field === 4)) {
    const kv = readMessage(entry.value);
    annotations[kv.find((f) => f.field === 1)?.value.toString('utf8') ?? ''] = kv.find((f) => f.field === 2)?.value ?? Buffer.alloc(0);
  }
  return {
    encryptedData: fields.find((f) => f.field === 1)?.value ?? Buffer.alloc(0),
    keyID: fields.find((f) => f.field === 2)?.value.toString('utf8') ?? '',
    annotations,
  };
}

/** Just enough protobuf: varints and length-delimited fields (all EncryptedObject uses, besides one enum). */
function readMessage(buf: Buffer): Array<{ field: number; value: Buffer }> {
  const out: Array<{ field: number; value: Buffer }> = [];
  let at = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = buf[at++];
      if (byte === undefined) throw new Error('truncated varint');
      result += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return result;
      shift += 7;
    }
  };
  while (at < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) out.push({ field, value: Buffer.from(String(varint())) });
    else if (wire === 2) {
      const length = varint();
      out.push({ field, value: buf.subarray(at, at + length) });
      at += length;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}
