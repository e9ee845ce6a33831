import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../../src/agent/agent.js';
import { parseExecArgs, parseFileAgentArgs, positiveSeconds } from '../../../src/agent/cli.js';
import { mutate, type JsonPatchOp } from '../../../src/kubernetes/webhook/mutate.js';

const LOGIN = ['--addr', 'https://keyhold:8200', '--role', 'app'];

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof AgentError && message.test(err.message));
}

describe('agent flags', () => {
  it('parses files, templates, modes, refresh and on-change', () => {
    const template = Buffer.from('X={{ app/db#password }}\n').toString('base64');
    const options = parseFileAgentArgs([...LOGIN, '--jwt-file', '/t', '--dest', '/out', '--mode', '0440',
      '--secret', 'a=app/db#password', '--secret', 'b=app/db:0400', '--template', `c=${template}:0444`, '--refresh', '30', '--on-change', 'kill -HUP 1']);
    assert.ok(options);
    assert.deepEqual(options.session, { address: 'https://keyhold:8200', role: 'app', jwtFile: '/t' });
    assert.equal(options.dest, '/out');
    assert.deepEqual(options.secrets.map((s) => [s.name, s.mode]), [['a', 0o440], ['b', 0o400], ['c', 0o444]]);
    assert.equal(options.secrets[2]?.template, 'X={{ app/db#password }}\n');
    assert.equal(options.periodMs, 30_000);
    assert.equal(options.onChange, 'kill -HUP 1');
  });

  it('defaults: the projected token path, /keyhold/secrets, 0400, no refresh (init), KEYHOLD_ADDR', () => {
    const saved = process.env.KEYHOLD_ADDR;
    process.env.KEYHOLD_ADDR = 'https://from-env:8200';
    try {
      const options = parseFileAgentArgs(['--role', 'app', '--secret', 'a=app/db']);
      assert.ok(options);
      assert.deepEqual(options.session, { address: 'https://from-env:8200', role: 'app', jwtFile: '/var/run/secrets/keyhold/token' });
      assert.equal(options.dest, '/keyhold/secrets');
      assert.equal(options.secrets[0]?.mode, 0o400);
      assert.equal(options.periodMs, undefined);
    } finally {
      if (saved === undefined) delete process.env.KEYHOLD_ADDR;
      else process.env.KEYHOLD_ADDR = saved;
    }
  });

  it('refuses bad flags with a message naming the flag', () => {
    refused(() => parseFileAgentArgs([...LOGIN]), /nothing to render/);
    refused(() => parseFileAgentArgs(['--addr', 'x', '--secret', 'a=app/db']), /--role is required/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=app/db', '--mode', '999']), /--mode must be an octal file mode/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=app/db', '--refresh', '0']), /--refresh must be a whole number/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=app/db', '--refresh', '1.5']), /--refresh must be a whole number/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'noequals']), /--secret must be NAME=PATH/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=../etc']), /--secret a=\.\.\/etc/);
    refused(() => parseFileAgentArgs([...LOGIN, '--template', 'c=not base64!']), /--template must be/);
    refused(() => parseFileAgentArgs([...LOGIN, '--template', `c=${Buffer.from('{{ nope').toString('base64')}`]), /--template c: template has a malformed placeholder/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=app/db', '--bogus']), /Unknown option '--bogus'/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret', 'a=app/db', 'stray']), /positional/);
    refused(() => parseFileAgentArgs([...LOGIN, '--secret']), /argument missing/);
    refused(() => positiveSeconds('--x', '-1'), /--x must be/);
  });

  it('exec: everything after -- is the command, untouched, even when it looks like agent flags', () => {
    const exec = parseExecArgs([...LOGIN, '--', '/app', '--role', 'other', '--']);
    assert.ok(exec);
    assert.deepEqual(exec.command, ['/app', '--role', 'other', '--']);
    assert.equal(exec.session.role, 'app');
    refused(() => parseExecArgs([...LOGIN]), /needs the command after --/);
    refused(() => parseExecArgs([...LOGIN, '--']), /needs the command after --/);
    refused(() => parseExecArgs([...LOGIN, '--secret', 'a=b', '--', '/app']), /Unknown option '--secret'/);
  });

  it('--help asks for the usage instead of running', () => {
    assert.equal(parseFileAgentArgs(['--help']), undefined);
    assert.equal(parseExecArgs(['-h']), undefined);
  });

  it('parses every command line the webhook injects (init, sidecar and exec)', () => {
    const saved = process.env.KEYHOLD_ADDR;
    const pod = {
      metadata: { name: 'p', annotations: {
        'keyhold.io/inject': 'true', 'keyhold.io/role': 'pay', 'keyhold.io/refresh': 'true',
        'keyhold.io/secret-db': 'pay/db#password', 'keyhold.io/template-db.env': 'P={{ pay/db#password }}',
      } },
      spec: { containers: [{ name: 'app', image: 'app@sha256:' + 'b'.repeat(64), command: ['/app'], env: [{ name: 'P', value: 'keyhold:pay/db#password' }] }] },
    };
    const m = mutate(pod, 'apps', { agentImage: 'keyhold:test', serverAddress: 'https://keyhold.keyhold.svc:8200' });
    assert.equal(m.kind, 'patch');
    const commands: string[][] = [];
    for (const op of (m as { patch: JsonPatchOp[] }).patch) {
      const values = Array.isArray(op.value) ? op.value : [op.value];
      for (const value of values as { command?: unknown }[]) {
        if (Array.isArray(value?.command) && value.command.includes('agent')) commands.push(value.command as string[]);
      }
      if (op.path.endsWith('/command')) commands.push(op.value as string[]);
    }
    try {
      process.env.KEYHOLD_ADDR = 'https://keyhold.keyhold.svc:8200';
      const parsed = commands.map((command) => {
        const args = command.slice(command.indexOf('agent') + 1);
        return args[0] === 'exec' ? parseExecArgs(args.slice(1)) : parseFileAgentArgs(args);
      });
      // init, sidecar and exec: each one, exactly once.
      assert.deepEqual(commands.map((c) => (c.includes('exec') ? 'exec' : c.includes('--refresh') ? 'sidecar' : 'init')).sort(), ['exec', 'init', 'sidecar']);
      for (const options of parsed) assert.ok(options);
    } finally {
      if (saved === undefined) delete process.env.KEYHOLD_ADDR;
      else process.env.KEYHOLD_ADDR = saved;
    }
  });
});
