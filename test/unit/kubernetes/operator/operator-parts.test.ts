/** The operator's pure parts and its probes and command source against real sockets and programs. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { capacityPatch, desiredUnits, unitsFromLabel } from '../../../../src/kubernetes/operator/nodes.js';
import { probeConnect, probeTarget } from '../../../../src/kubernetes/operator/probe.js';
import { discover, parseCommandOutput } from '../../../../src/kubernetes/operator/sources.js';
import { parseSpec } from '../../../../src/kubernetes/operator/spec.js';
import { tempDir } from '../../../helpers/temp.js';

describe('operator parts', () => {
  it('probe targets: unix sockets, p11-kit tcp addresses, host:port and [v6]:port; anything else is unprobeable', () => {
    assert.deepEqual(probeTarget('unix:path=/run/p11-kit/a.sock'), { path: '/run/p11-kit/a.sock' });
    assert.deepEqual(probeTarget('tcp:host=10.0.0.5,port=2225'), { host: '10.0.0.5', port: 2225 });
    assert.deepEqual(probeTarget('hsm-1.example:2225'), { host: 'hsm-1.example', port: 2225 });
    assert.deepEqual(probeTarget('[fd00::5]:2225'), { host: 'fd00::5', port: 2225 });
    for (const bad of ['hsm-1.example', 'hsm:0', 'hsm:70000', 'tcp:host=x', 'vsock:cid=3', '']) assert.equal(probeTarget(bad), undefined, bad);
  });

  it('the connect probe: a listening socket is healthy, a missing one and a closed port are not, with the reason', async () => {
    const dir = tempDir('keyhold-probe-');
    const sock = join(dir, 's.sock');
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const up = await probeConnect(`unix:path=${sock}`, 1000);
      assert.equal(up.healthy, true);
      assert.ok(up.latencyMs >= 0 && up.latencyMs < 1000);
      const missing = await probeConnect(`unix:path=${join(dir, 'none.sock')}`, 1000);
      assert.deepEqual([missing.healthy, missing.error], [false, 'ENOENT']);
    } finally {
      server.close();
    }
    assert.equal((await probeConnect(`unix:path=${sock}`, 1000)).error, 'ENOENT');
    const tcp = createServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as { port: number }).port;
    assert.equal((await probeConnect(`127.0.0.1:${port}`, 1000)).healthy, true);
    await new Promise((r) => tcp.close(r));
    assert.equal((await probeConnect(`127.0.0.1:${port}`, 1000)).error, 'ECONNREFUSED');
    assert.match((await probeConnect('nonsense', 1000)).error ?? '', /address is not/);
  });

  it('node units: "true" is one, a count is that many, anything else none; the most any mark gives wins', () => {
    assert.equal(unitsFromLabel('true'), 1);
    assert.equal(unitsFromLabel('3'), 3);
    for (const v of [undefined, 'false', '0', '-1', '1.5', '65', 'yes', '01']) assert.equal(unitsFromLabel(v), 0, String(v));
    const node = { metadata: { name: 'n', labels: { 'keyhold.io/hsm': '2', rack: 'a' } } };
    assert.equal(desiredUnits(node, 'keyhold.io/hsm', []), 2);
    assert.equal(desiredUnits(node, 'keyhold.io/hsm', [{ nodeSelector: { rack: 'a' }, count: 4 }]), 4);
    assert.equal(desiredUnits(node, 'other', [{ nodeSelector: { rack: 'b' }, count: 4 }]), 0);
  });

  it('the node status patch adds the resource to capacity and allocatable, removes only what is there, and is empty when nothing changes', () => {
    assert.deepEqual(capacityPatch({ metadata: { name: 'n' }, status: { capacity: { cpu: '4' }, allocatable: { cpu: '4' } } }, 2), [
      { op: 'add', path: '/status/capacity/keyhold.io~1hsm', value: '2' },
      { op: 'add', path: '/status/allocatable/keyhold.io~1hsm', value: '2' },
    ]);
    assert.deepEqual(capacityPatch({ metadata: { name: 'n' } }, 1), [
      { op: 'add', path: '/status', value: {} },
      { op: 'add', path: '/status/capacity', value: {} },
      { op: 'add', path: '/status/capacity/keyhold.io~1hsm', value: '1' },
      { op: 'add', path: '/status/allocatable', value: {} },
      { op: 'add', path: '/status/allocatable/keyhold.io~1hsm', value: '1' },
    ]);
    const has = { metadata: { name: 'n' }, status: { capacity: { 'keyhold.io/hsm': '1' }, allocatable: { 'keyhold.io/hsm': '1' } } };
    assert.equal(capacityPatch(has, 1), undefined);
    assert.deepEqual(capacityPatch(has, 0), [
      { op: 'remove', path: '/status/capacity/keyhold.io~1hsm' },
      { op: 'remove', path: '/status/allocatable/keyhold.io~1hsm' },
    ]);
    assert.equal(capacityPatch({ metadata: { name: 'n' } }, 0), undefined);
  });

  it('the spec: defaults, and a message naming the bad field (an old CRD without the schema\'s checks)', () => {
    const spec = parseSpec({ sources: [{ static: { endpoints: [{ name: 'b', address: 'x:1' }, { name: 'a', address: 'y:1' }] } }], configMap: { name: 'cm' } }, { periodSeconds: 30 });
    assert.deepEqual(spec, { sources: [{ kind: 'static', endpoints: [{ name: 'a', address: 'y:1' }, { name: 'b', address: 'x:1' }] }], probe: { periodMs: 30_000, timeoutMs: 2000 }, configMap: 'cm' });
    const bad: Array<[unknown, RegExp]> = [
      [{}, /spec\.sources/],
      [{ sources: [{}], configMap: { name: 'cm' } }, /exactly one/],
      [{ sources: [{ static: { endpoints: [] }, dns: {} }], configMap: { name: 'cm' } }, /exactly one/],
      [{ sources: [{ dns: { name: 'x', type: 'A' } }], configMap: { name: 'cm' } }, /port is needed/],
      [{ sources: [{ command: { command: [] } }], configMap: { name: 'cm' } }, /command\.command/],
      [{ sources: [{ static: { endpoints: [] } }], configMap: { name: 'Bad_Name' } }, /configMap\.name/],
      [{ sources: [{ static: { endpoints: [] } }], configMap: { name: 'cm' }, probe: { periodSeconds: 0 } }, /periodSeconds/],
      [{ sources: [{ static: { endpoints: [] } }], configMap: { name: 'cm' }, nodeResource: { nodeSelector: {} } }, /nodeSelector/],
    ];
    for (const [raw, message] of bad) assert.throws(() => parseSpec(raw, { periodSeconds: 30 }), message, JSON.stringify(raw));
    // A probe never outlasts its period.
    assert.equal(parseSpec({ sources: [{ static: { endpoints: [] } }], configMap: { name: 'cm' }, probe: { periodSeconds: 1, timeoutSeconds: 5 } }, { periodSeconds: 30 }).probe.timeoutMs, 1000);
  });

  it('command output: both shapes, and a reason for anything else', () => {
    assert.deepEqual(parseCommandOutput('p', '[{"name":"a","address":"x:1"}]'), { ok: true, endpoints: [{ name: 'a', address: 'x:1' }] });
    assert.deepEqual(parseCommandOutput('p', '{"endpoints":[{"name":"a","address":"x:1"}],"other":1}'), { ok: true, endpoints: [{ name: 'a', address: 'x:1' }] });
    for (const out of ['', 'null', '{"endpoints":{}}', '[{"name":"a"}]', '{"Endpoints":[]}']) {
      const r = parseCommandOutput('p', out);
      assert.equal(r.ok, false, out);
      assert.equal(!r.ok && r.reason, 'CommandOutputInvalid');
    }
  });

  it('the command source runs argv without a shell, is killed at its timeout, and runs only allowed programs', async () => {
    const dir = tempDir('keyhold-cmd-');
    const script = join(dir, 'slow.mjs');
    writeFileSync(script, "setTimeout(() => process.stdout.write('[]'), 10_000);\n");
    const allowed = { allowedCommands: [process.execPath] };
    const started = Date.now();
    const slow = await discover({ kind: 'command', command: [process.execPath, script], timeoutMs: 500 }, allowed);
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(slow, { ok: false, reason: 'CommandFailed', message: `${process.execPath}: timed out after 0.5 s` });
    // No shell: `$(…)` and `;` reach the program as they are.
    const echo = await discover({ kind: 'command', command: [process.execPath, '-e', 'process.stdout.write(JSON.stringify([{name: "a", address: process.argv[1]}]))', 'x:1;$(id)'], timeoutMs: 5000 }, allowed);
    assert.deepEqual(echo, { ok: true, endpoints: [{ name: 'a', address: 'x:1;$(id)' }] });
    assert.deepEqual(await discover({ kind: 'command', command: ['/bin/sh', '-c', 'echo []'], timeoutMs: 5000 }, allowed), { ok: false, reason: 'CommandNotAllowed', message: "/bin/sh is not in the operator's --allow-command list" });
  });
});
