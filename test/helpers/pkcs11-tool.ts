import assert from 'node:assert/strict';
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

/** Every listed object is a private or secret key that is sensitive, always was, and was never extractable. */
export function assertOnlyNonExtractableKeys(objects: ListedObject[]): void {
  for (const object of objects) {
    const what = `${object.header} "${object.label ?? '?'}"`;
    assert.match(object.header, /^(Private Key Object|Secret Key Object);/, `unexpected object ${what}`);
    assert.ok(object.access, `${what} has no Access line`);
    const flags = object.access.split(',').map((flag) => flag.trim());
    for (const required of ['sensitive', 'always sensitive', 'never extractable']) {
      assert.ok(flags.includes(required), `${what} Access lacks "${required}": ${object.access}`);
    }
    assert.doesNotMatch(object.access.replace(/never extractable/g, ''), /extractable/, `${what} is extractable: ${object.access}`);
  }
}
