/** Shared bits of the console tests (not a test file itself): a real server with the console, and sign-in steps. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { stringify } from 'yaml';
import { call, devServerConfig, startDev, startServer, tempDir, type DevServer } from '../../helpers/server.js';
import { PASSWORD } from '../operators/support.js';

export interface ConsoleServer {
  server: DevServer;
  address: string;
  rootToken: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  configFile: string;
}

/**
 * A `keyhold dev` data dir (real SoftHSM token, SQLite, audit file), then `keyhold server` on it
 * with checkpoints every half second (so the audit page has signed checkpoints to check) and
 * `extra` config merged on top. The console is on by default, as in production.
 */
export async function startConsoleServer(prefix: string, extra: Record<string, unknown> = {}): Promise<ConsoleServer> {
  const dataDir = tempDir(prefix);
  const dev = await startDev(dataDir);
  const rootToken = dev.rootToken;
  await dev.stop('SIGTERM');
  const configFile = path.join(dataDir, 'server.yaml');
  fs.writeFileSync(configFile, stringify(devServerConfig(dataDir, { audit: { path: path.join(dataDir, 'audit.log'), checkpointIntervalSeconds: 0.5 }, ...extra })));
  const env = { SOFTHSM2_CONF: path.join(dataDir, 'softhsm2.conf') };
  const server = await startServer(configFile, env, dataDir);
  return { server, address: server.address, rootToken, dataDir, env, configFile };
}

/** A root API call that must succeed. */
export async function asRoot(s: ConsoleServer, method: string, urlPath: string, body?: unknown): Promise<any> {
  const r = await call(s.address, method, urlPath, s.rootToken, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${urlPath}: ${r.status} ${r.text}`);
  return r.body;
}

/** A token with exactly these policy rules (and `create` on sys/tokens, which a token session needs). */
export async function tokenWith(s: ConsoleServer, name: string, rules: Array<{ path: string; capabilities: string[] }>): Promise<string> {
  await asRoot(s, 'PUT', `/v1/policies/${name}`, { rules: [...rules, { path: 'sys/tokens', capabilities: ['create'] }] });
  const created = await asRoot(s, 'POST', '/v1/tokens', { policies: [name], ttl: '2h', display_name: name });
  return created.token as string;
}

/** Signs in on the login page with a token (the labelled bootstrap way) and waits for the overview. */
export async function signInWithToken(page: Page, address: string, token: string): Promise<void> {
  await page.goto(`${address}/ui/`);
  await page.getByText('Bootstrap: sign in with a token').click();
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Start session with token' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** The session cookie of a browser context (set by the server; HttpOnly, so only the browser has it). */
export async function sessionCookie(page: Page): Promise<{ name: string; value: string; httpOnly: boolean; secure: boolean; sameSite: string; expires: number } | undefined> {
  return (await page.context().cookies()).find((c) => c.name === 'keyhold_session');
}

/** Signs in on the login page as an operator (password + authenticator code); does not wait for the outcome. */
export async function signInAsOperator(page: Page, address: string, name: string, code: string): Promise<void> {
  await page.goto(`${address}/ui/`);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Authenticator code').fill(code);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}
