import { KeyholdClient } from '../../client/client.js';
import { printJson } from '../output.js';

const client = () => KeyholdClient.fromEnv();

/** `k=v` pairs; `k=@file` reads the value from a file; `-` as the only pair reads a JSON object from stdin. */
async function parsePairs(pairs: string[]): Promise<Record<string, unknown>> {
  const { readFileSync } = await import('node:fs');
  if (pairs.length === 1 && pairs[0] === '-') return JSON.parse(readFileSync(0, 'utf8')) as Record<string, unknown>;
  const data: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw Object.assign(new Error(`expected key=value, got "${pair}"`), { code: 'ERR_BAD_REQUEST' });
    const value = pair.slice(eq + 1);
    data[pair.slice(0, eq)] = value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value;
  }
  return data;
}

export const secretCommands = {
  async put(path: string, pairs: string[], o: { cas?: string }) {
    printJson(await client().putSecret(path, await parsePairs(pairs), o.cas === undefined ? undefined : Number(o.cas)));
  },
  async get(path: string, o: { version?: string; field?: string }) {
    const secret = await client().getSecret(path, o.version ? Number(o.version) : undefined);
    if (o.field) {
      const value = secret.data[o.field];
      if (value === undefined) throw Object.assign(new Error(`secret has no field "${o.field}"`), { code: 'ERR_NOT_FOUND' });
      process.stdout.write(typeof value === 'string' ? value : JSON.stringify(value));
      return;
    }
    printJson(secret);
  },
  async list(folder: string | undefined) { printJson(await client().listSecrets(folder ?? '')); },
  async delete(path: string, o: { versions?: string }) { printJson(await client().deleteSecret(path, o.versions?.split(',').map(Number))); },
  async undelete(path: string, o: { versions: string }) { printJson(await client().undeleteSecret(path, o.versions.split(',').map(Number))); },
  async destroy(path: string, o: { versions: string }) { printJson(await client().destroySecret(path, o.versions.split(',').map(Number))); },
  async metadata(path: string) { printJson(await client().secretMetadata(path)); },
};
