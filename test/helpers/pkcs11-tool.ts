import { spawnSync } from 'node:child_process';

/** OpenSC's pkcs11-tool: an independent reader of what keyhold left in a token. */
export function pkcs11Tool(module: string, confPath: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('pkcs11-tool', ['--module', module, ...args], {
    env: { ...process.env, SOFTHSM2_CONF: confPath },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface ListedObject {
  header: string;
  label: string | undefined;
  access: string | undefined;
}

/** Splits `pkcs11-tool --list-objects` output into objects: a header line, then indented attribute lines. */
export function parseListedObjects(output: string): ListedObject[] {
  const objects: ListedObject[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      objects.push({ header: line.trim(), label: undefined, access: undefined });
      continue;
    }
    const current = objects[objects.length - 1];
    const match = /^\s+(\w[\w ]*?):\s*(.*)$/.exec(line);
    if (!current || !match) continue;
    if (match[1] === 'label') current.label = match[2]?.trim();
    if (match[1] === 'Access') current.access = match[2]?.trim();
  }
  return objects;
}
