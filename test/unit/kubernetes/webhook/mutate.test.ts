import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { mutate, type JsonPatchOp } from '../../../../src/kubernetes/webhook/mutate.js';
import { applyPatch } from '../../../helpers/json-patch.js';

const OPTIONS = { agentImage: 'keyhold:test', serverAddress: 'https://keyhold.keyhold.svc:8200' };

function pod(annotations: Record<string, string> | undefined, spec: Partial<V1Pod['spec']> = {}): V1Pod {
  return { metadata: { name: 'p', ...(annotations ? { annotations } : {}) }, spec: { containers: [{ name: 'app', image: 'app@sha256:' + 'b'.repeat(64) }], ...spec } as V1Pod['spec'] };
}

describe('webhook mutation', () => {
  it('injects the token volume, in-memory secrets, the init agent and the read-only mount, and marks the pod', () => {
    const m = mutate(pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-db': 'pay/db#password', 'keyhold.io/mode-db': '0440' }), 'apps', OPTIONS);
    assert.equal(m.kind, 'patch');
    const out = applyPatch(pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-db': 'pay/db#password', 'keyhold.io/mode-db': '0440' }), (m as { patch: JsonPatchOp[] }).patch);
    assert.deepEqual(out.spec.volumes.map((v: { name: string }) => v.name), ['keyhold-token', 'keyhold-secrets']);
    assert.deepEqual(out.spec.volumes[0].projected.sources[0].serviceAccountToken, { audience: 'keyhold', expirationSeconds: 600, path: 'token' });
    assert.equal(out.spec.volumes[1].emptyDir.medium, 'Memory');
    const init = out.spec.initContainers[0];
    assert.equal(init.name, 'keyhold-agent-init');
    assert.deepEqual(init.command, ['keyhold', 'agent', '--role', 'pay', '--jwt-file', '/var/run/secrets/keyhold/token', '--dest', '/keyhold/secrets', '--secret', 'db=pay/db#password:0440']);
    assert.equal(init.securityContext.runAsNonRoot, true);
    assert.equal(init.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(init.securityContext.capabilities, { drop: ['ALL'] });
    assert.deepEqual(out.spec.containers[0].volumeMounts, [{ name: 'keyhold-secrets', mountPath: '/keyhold/secrets', readOnly: true }]);
    assert.equal(out.metadata.annotations['keyhold.io/status'], 'injected');
    // Re-invocation is idempotent.
    assert.equal(mutate(out, 'apps', OPTIONS).kind, 'skip');
  });

  it('appends to existing volumes, init containers and mounts instead of replacing them; limits mounts to keyhold.io/containers', () => {
    const p = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a', 'keyhold.io/containers': 'web' }, {
      containers: [{ name: 'web', image: 'w', volumeMounts: [{ name: 'data', mountPath: '/data' }] }, { name: 'side', image: 's' }],
      initContainers: [{ name: 'migrate', image: 'm' }],
      volumes: [{ name: 'data', emptyDir: {} }],
    });
    const m = mutate(p, 'apps', OPTIONS);
    const out = applyPatch(p, (m as { patch: JsonPatchOp[] }).patch);
    assert.deepEqual(out.spec.volumes.map((v: { name: string }) => v.name), ['data', 'keyhold-token', 'keyhold-secrets']);
    assert.deepEqual(out.spec.initContainers.map((c: { name: string }) => c.name), ['keyhold-agent-init', 'migrate']);
    assert.deepEqual(out.spec.containers[0].volumeMounts.map((v: { name: string }) => v.name), ['data', 'keyhold-secrets']);
    assert.equal(out.spec.containers[1].volumeMounts, undefined);
  });

  it('templates: passed to the agent as base64, with their mode', () => {
    const template = 'user={{ pay/db#user }}\npass={{ pay/db#password }}\n';
    const p = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/template-db.env': template, 'keyhold.io/mode-db.env': '0440' });
    const out = applyPatch(p, (mutate(p, 'apps', OPTIONS) as { patch: JsonPatchOp[] }).patch);
    const command: string[] = out.spec.initContainers[0].command;
    const arg = command[command.indexOf('--template') + 1] as string;
    assert.equal(arg, `db.env=${Buffer.from(template).toString('base64')}:0440`);
  });

  it('refresh: a native sidecar (init container with restartPolicy Always) after the init agent', () => {
    const p = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a', 'keyhold.io/refresh': 'true' });
    const out = applyPatch(p, (mutate(p, 'apps', OPTIONS) as { patch: JsonPatchOp[] }).patch);
    const sidecar = out.spec.initContainers[1];
    assert.equal(sidecar.name, 'keyhold-agent');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.deepEqual(sidecar.command.slice(-2), ['--refresh', '300']);
  });

  it('env mode: wraps the known command with agent exec; refuses when the command is unknown, saying what to add', () => {
    const env = [{ name: 'DB', value: 'keyhold:pay/db#password' }, { name: 'PLAIN', value: 'x' }];
    const known = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay' }, { containers: [{ name: 'app', image: 'a', command: ['/app'], args: ['--serve'], env }] });
    const out = applyPatch(known, (mutate(known, 'apps', OPTIONS) as { patch: JsonPatchOp[] }).patch);
    assert.deepEqual(out.spec.containers[0].command, ['/keyhold/bin/keyhold', 'agent', 'exec', '--role', 'pay', '--jwt-file', '/var/run/secrets/keyhold/token', '--', '/app', '--serve']);
    assert.deepEqual(out.spec.containers[0].args, []);
    assert.equal(out.spec.containers[0].env.find((e: { name: string }) => e.name === 'DB').value, 'keyhold:pay/db#password', 'the spec keeps the reference, never the value');
    const unknown = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay' }, { containers: [{ name: 'app', image: 'a', env }] });
    const refused = mutate(unknown, 'apps', OPTIONS);
    assert.equal(refused.kind, 'refuse');
    assert.match((refused as { message: string }).message, /keyhold\.io\/command-app/);
    assert.match((refused as { message: string }).message, /never asks a registry/);
    // A reference the agent could not resolve is refused at admission, not left to crash-loop.
    const noField = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay' }, { containers: [{ name: 'app', image: 'a', command: ['/app'], env: [{ name: 'DB', value: 'keyhold:pay/db' }] }] });
    assert.match((mutate(noField, 'apps', OPTIONS) as { message: string }).message, /env DB: .*needs a #field/);
    const annotated = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/command-app': '["/entry","a"]' }, { containers: [{ name: 'app', image: 'a', env }] });
    const out2 = applyPatch(annotated, (mutate(annotated, 'apps', OPTIONS) as { patch: JsonPatchOp[] }).patch);
    assert.deepEqual(out2.spec.containers[0].command.slice(-2), ['/entry', 'a']);
  });

  it('never touches kube-system or kube-public; ignores pods that did not opt in; refuses malformed requests with the reason', () => {
    const p = pod({ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a' });
    assert.equal(mutate(p, 'kube-system', OPTIONS).kind, 'skip');
    assert.equal(mutate(p, 'kube-public', OPTIONS).kind, 'skip');
    assert.equal(mutate(pod(undefined), 'apps', OPTIONS).kind, 'skip');
    assert.equal(mutate(pod({ 'keyhold.io/inject': 'false' }), 'apps', OPTIONS).kind, 'skip');
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/secret-a': 'pay/a' }, /keyhold.io\/role/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay' }, /asks for nothing/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-../x': 'pay/a' }, /file name/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/../b' }, /not <path>/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a', 'keyhold.io/mode-a': '999' }, /octal/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a', 'keyhold.io/containers': 'nope' }, /does not have: nope/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/secret-a': 'pay/a', 'keyhold.io/template-a': '{{ pay/a#x }}' }, /one or the other/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/template-t': 'no placeholders' }, /no \{\{/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/template-t': 'x={{ pay/a }}' }, /needs a #field/],
      [{ 'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/template-t': 'x={{ ../a#b }}' }, /invalid secret path/],
    ];
    for (const [annotations, reason] of cases) {
      const m = mutate(pod(annotations), 'apps', OPTIONS);
      assert.equal(m.kind, 'refuse', JSON.stringify(annotations));
      assert.match((m as { message: string }).message, reason);
    }
  });
});
