import { readFileSync } from 'node:fs';
import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';

/** Input for encrypt/sign: --data literal, --file path, or stdin ("-"). */
export function readInput(options: { data?: string; file?: string }): Buffer {
  if (options.data !== undefined) return Buffer.from(options.data, 'utf8');
  if (options.file !== undefined) return readFileSync(options.file === '-' ? 0 : options.file);
  return readFileSync(0);
}

const client = () => KeyholdClient.fromEnv();

export const keyCommands = {
  async create(name: string, o: { type: string; protection: 'hsm' | 'wrapped'; deletionAllowed?: boolean }) {
    printJson(await client().createKey(name, o.type, o.protection, o.deletionAllowed));
  },
  async get(name: string) { printJson(await client().getKey(name)); },
  async list() { printJson(await client().listKeys()); },
  async rotate(name: string) { printJson(await client().rotateKey(name)); },
  async config(name: string, o: { minDecryptionVersion?: string; deletionAllowed?: boolean; disabled?: boolean }) {
    printJson(await client().configureKey(name, {
      ...(o.minDecryptionVersion ? { min_decryption_version: Number(o.minDecryptionVersion) } : {}),
      ...(o.deletionAllowed === undefined ? {} : { deletion_allowed: o.deletionAllowed }),
      ...(o.disabled === undefined ? {} : { disabled: o.disabled }),
    }));
  },
  async delete(name: string) { await client().deleteKey(name); },
  async encrypt(name: string, o: { data?: string; file?: string; context?: string }) {
    printJson(await client().encrypt(name, readInput(o), o.context ? Buffer.from(o.context, 'utf8') : undefined));
  },
  async decrypt(name: string, ciphertext: string, o: { context?: string }) {
    const plaintext = await client().decrypt(name, ciphertext, o.context ? Buffer.from(o.context, 'utf8') : undefined);
    process.stdout.write(plaintext);
    plaintext.fill(0);
  },
  async datakey(name: string, o: { wrappedOnly?: boolean; bits?: string }) {
    printJson(await client().dataKey(name, { plaintext: !o.wrappedOnly, bits: o.bits === '128' ? 128 : 256 }));
  },
  async sign(name: string, o: { data?: string; file?: string }) { printJson(await client().sign(name, readInput(o))); },
  async verify(name: string, signature: string, o: { data?: string; file?: string }) {
    const result = await client().verify(name, readInput(o), signature);
    printJson(result);
    if (!result.valid) process.exitCode = 1;
  },
};
