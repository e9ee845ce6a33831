/**
 * The people commands of the real `keyhold` CLI against a real `keyhold dev` server: account
 * create/list/show/reset/delete, enrol and confirm, login (password from stdin, a file or
 * KEYHOLD_PASSWORD, never argv), group put/show/list/delete, capabilities.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, startDev, tempDir, type DevServer } from '../../helpers/server.js';
import { PASSWORD, totp } from './support.js';

let server: DevServer;
const dir = tempDir();

/** Runs the CLI with `stdin` piped in; resolves with its exit code and output. */
function cli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv; token?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string; json: any }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KEYHOLD_ADDR: server.address, KEYHOLD_TOKEN: options.token ?? server.rootToken, ...options.env };
    if (options.token === '') delete env.KEYHOLD_TOKEN;
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      let json: any;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code, stdout, stderr, json });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

async function ok(args: string[], options: Parameters<typeof cli>[1] = {}): Promise<any> {
  const r = await cli(args, options);
  assert.equal(r.code, 0, `keyhold ${args.join(' ')}: ${r.stderr}`);
  return r.json;
}

before(async () => {
  server = await startDev(tempDir());
});
after(async () => {
  await server?.stop();
});

describe('keyhold account, login, group, capabilities', () => {
  let secret = '';
  const passwordFile = join(dir, 'password');

  it('creates an account with the password from stdin, and lists and shows it', async () => {
    const created = await ok(['account', 'create', 'olga'], { stdin: `${PASSWORD}\n` });
    assert.equal(created.name, 'olga');
    assert.equal(created.enrolled, false);
    assert.deepEqual((await ok(['account', 'list'])).operators, ['olga']);
    assert.equal((await ok(['account', 'show', 'olga'])).enrolled, false);
  });

  it('enrols: prints the otpauth URI; confirm prints the recovery codes', async () => {
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const begun = await ok(['account', 'enrol', 'olga', '--password-file', passwordFile], { token: '' });
    secret = new URL(begun.otpauth_uri).searchParams.get('secret') as string;
    assert.match(secret, /^[A-Z2-7]{32}$/);
    const confirmed = await ok(['account', 'confirm', 'olga', '--password-file', passwordFile, '--totp', await totp(secret, -1)], { token: '' });
    assert.equal(confirmed.recovery_codes.length, 10);
  });

  it('puts a group, then logs in (password from KEYHOLD_PASSWORD) and writes the token to a file', async () => {
    await ok(['policy', 'put', 'keys-read', '-'], { stdin: JSON.stringify({ rules: [{ path: 'keys/*', capabilities: ['read'] }] }) });
    const group = await ok(['group', 'put', 'readers', '--policy', 'keys-read', '--member', 'olga', '--external-group', 'Readers']);
    assert.deepEqual(group, { name: 'readers', policies: ['keys-read'], members: ['olga'], external_groups: ['Readers'] });
    assert.deepEqual((await ok(['group', 'list'])).groups, ['readers']);
    assert.deepEqual((await ok(['group', 'show', 'readers'])).members, ['olga']);
    const tokenFile = join(dir, 'token');
    const answer = await ok(['login', 'olga', '--totp', await totp(secret), '--token-file', tokenFile], { token: '', env: { KEYHOLD_PASSWORD: PASSWORD } });
    assert.equal(answer.token, undefined, 'the token is in the file, not printed');
    assert.deepEqual(answer.policies, ['keys-read']);
    assert.equal(answer.identity.person, 'operator:olga');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    const caps = await ok(['capabilities', 'keys/payments'], { token });
    assert.deepEqual(caps.capabilities, ['read']);
    assert.equal(caps.identity.person, 'operator:olga');
  });

  it('logs in with password and code both on stdin, printing the token', async () => {
    const answer = await ok(['login', 'olga'], { token: '', stdin: `${PASSWORD}\n${await totp(secret, 1)}\n` });
    assert.match(answer.token, /^khs\./);
  });

  it('fails with the code of the refusal and a non-zero exit', async () => {
    const r = await cli(['login', 'olga', '--totp', '000000'], { token: '', stdin: 'not the password\n' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_LOGIN_FAILED/);
    const empty = await cli(['login', 'olga', '--totp', '000000'], { token: '', stdin: '' });
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /nothing given/);
  });

  it('resets and deletes accounts, deletes groups', async () => {
    const reset = await ok(['account', 'reset', 'olga', '--password-file', passwordFile]);
    assert.equal(reset.enrolled, false);
    await ok(['account', 'delete', 'olga']);
    await ok(['group', 'delete', 'readers']);
    assert.deepEqual((await ok(['account', 'list'])).operators, []);
  });
});
