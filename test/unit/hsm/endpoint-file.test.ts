import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { HsmMemberConfig, HsmSettings } from '../../../src/hsm/config.js';
import { readEndpointFile, watchEndpointFile } from '../../../src/hsm/endpoint-file.js';
import { keyholdCode } from '../../helpers/errors.js';
import { tempDir } from '../../helpers/temp.js';
import { pollUntil } from '../../helpers/wait.js';

const settings = (file: string): HsmSettings => ({
  endpoints: { file },
  sessions: 2,
  memberTemplate: { module: '/m/${name}.so', env: { P11_KIT_SERVER_ADDRESS: '${address}' }, tokenLabel: 'tok', pinFile: '/run/pin-${name}' },
});
const list = (...endpoints: Array<[string, string]>) => JSON.stringify({ cluster: 'c', endpoints: endpoints.map(([name, address]) => ({ name, address })) });

describe('HSM endpoint file (the operator\'s endpoints.json)', () => {
  it('fills the member template per endpoint', () => {
    const file = join(tempDir('keyhold-endpoints-'), 'endpoints.json');
    writeFileSync(file, list(['a', 'unix:path=/a.sock'], ['b', 'tcp:host=10.0.0.2,port=2345']));
    assert.deepEqual(readEndpointFile(file, settings(file)).members, [
      { name: 'a', module: '/m/a.so', tokenLabel: 'tok', pinFile: '/run/pin-a', env: { P11_KIT_SERVER_ADDRESS: 'unix:path=/a.sock' }, sessions: 2 },
      { name: 'b', module: '/m/b.so', tokenLabel: 'tok', pinFile: '/run/pin-b', env: { P11_KIT_SERVER_ADDRESS: 'tcp:host=10.0.0.2,port=2345' }, sessions: 2 },
    ]);
  });

  it('refuses a file that is not an endpoint set, as the ConfigMap reader does (ERR_CONFIG)', () => {
    const file = join(tempDir('keyhold-endpoints-'), 'endpoints.json');
    const bad = [
      'not json', '{}', '{"endpoints": []}',
      '{"cluster": "c", "endpoints": [{"name": "a"}]}', '{"cluster": "c", "endpoints": [{"name": "../x", "address": "a"}]}',
      '{"cluster": "c", "endpoints": [{"name": ".a", "address": "a"}]}', '{"cluster": "c", "endpoints": [{"name": "a", "address": ""}]}',
      '{"cluster": "c", "endpoints": [{"name": "a", "address": "x\\ny"}]}', '{"cluster": "c", "endpoints": [{"name": "a", "address": "x"}, {"name": "a", "address": "y"}]}',
    ];
    for (const text of bad) {
      writeFileSync(file, text);
      assert.throws(() => readEndpointFile(file, settings(file)), keyholdCode('ERR_CONFIG'), text);
    }
  });

  it('applies a file that changed while the pool was opening (the watch starts from the text the pool opened with)', async () => {
    const file = join(tempDir('keyhold-endpoints-'), 'endpoints.json');
    writeFileSync(file, list(['a', 'A']));
    const { text } = readEndpointFile(file, settings(file));
    writeFileSync(file, list(['a', 'A'], ['b', 'B']));
    const applied: string[][] = [];
    const watch = watchEndpointFile(file, settings(file), {
      async setMembers(members: HsmMemberConfig[]) { applied.push(members.map((m) => m.name)); },
    }, undefined, 50, text);
    try {
      await pollUntil('the change applied', () => applied.length === 1, { timeoutMs: 3000, intervalMs: 20 });
      assert.deepEqual(applied[0], ['a', 'b']);
    } finally {
      watch.close();
    }
  });

  it('applies a changed file (also when swapped in by rename, as a ConfigMap mount does), and keeps the members when the new file is invalid', async () => {
    const dir = tempDir('keyhold-endpoints-');
    const file = join(dir, 'endpoints.json');
    writeFileSync(file, list(['a', 'A']));
    const applied: string[][] = [];
    const logs: string[] = [];
    const watch = watchEndpointFile(file, settings(file), {
      async setMembers(members: HsmMemberConfig[]) { applied.push(members.map((m) => `${m.name}=${m.env?.P11_KIT_SERVER_ADDRESS}`)); },
    }, (m) => logs.push(m), 50);
    try {
      writeFileSync(file, list(['a', 'A'], ['b', 'B']));
      await pollUntil('first change applied', () => applied.length === 1, { timeoutMs: 3000, intervalMs: 20 });
      assert.deepEqual(applied[0], ['a=A', 'b=B']);
      writeFileSync(join(dir, 'next.json'), list(['b', 'B']));
      renameSync(join(dir, 'next.json'), file);
      await pollUntil('second change applied', () => applied.length === 2, { timeoutMs: 3000, intervalMs: 20 });
      assert.deepEqual(applied[1], ['b=B']);
      writeFileSync(file, '{"endpoints": "nope"');
      await pollUntil('the invalid file is reported', () => logs.some((l) => /keeping the current members/.test(l)), { timeoutMs: 3000, intervalMs: 20 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(applied.length, 2, 'nothing applied from an invalid file');
      assert.equal(logs.filter((l) => /keeping the current members/.test(l)).length, 1, 'reported once');
    } finally {
      watch.close();
    }
  });
});
