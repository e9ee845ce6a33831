/** Shared bits of the SSO integration tests (not a test file itself): a keyhold dev server and a real oidc-provider, wired together. */
import assert from 'node:assert/strict';
import { startOidcProvider, type OidcAccount, type OidcProviderOptions, type TestOidcProvider } from '../../helpers/oidc-provider.js';
import { auditRecords, call, startDev, type AuditLine, type DevServer } from '../../helpers/server.js';

export const CALLBACK = '/v1/auth/oidc/callback';

export interface SsoSetup {
  kh: DevServer;
  idp: TestOidcProvider;
  /** keyhold's browser callback, the redirect URI configured at both ends. */
  redirectUri: string;
  /** PUT /v1/auth/oidc/config with the provider's client (fields of `extra` override). */
  configure(extra?: Record<string, unknown>, token?: string): Promise<{ status: number; body: any; text: string }>;
  /** auth-url, then the provider's login pages as `account`: the authorization response. */
  beginLogin(account: string): Promise<{ authUrl: string; code: string; state: string; iss: string | null; nonce: string }>;
  /** POST callback with the code and state. */
  callback(body: Record<string, unknown>): Promise<{ status: number; body: any; text: string }>;
  stop(): Promise<void>;
}

export async function startSso(accounts: Record<string, OidcAccount>, options: Partial<OidcProviderOptions> = {}, serverEnv: NodeJS.ProcessEnv = {}): Promise<SsoSetup> {
  const kh = await startDev(undefined, serverEnv);
  const redirectUri = kh.address + CALLBACK;
  let idp: TestOidcProvider;
  try {
    idp = await startOidcProvider({ redirectUris: [redirectUri], accounts, ...options });
  } catch (err) {
    await kh.stop();
    throw err;
  }
  const setup: SsoSetup = {
    kh, idp, redirectUri,
    configure: (extra = {}, token = kh.rootToken) => call(kh.address, 'PUT', '/v1/auth/oidc/config', token, {
      issuer: idp.issuer, client_id: idp.client.client_id, client_secret: idp.client.client_secret, redirect_uris: [redirectUri],
      scopes: ['openid', 'profile', 'email', 'groups'], ...extra,
    }),
    async beginLogin(account) {
      const r = await call(kh.address, 'POST', '/v1/auth/oidc/auth-url', undefined, { redirect_uri: redirectUri });
      assert.equal(r.status, 200, r.text);
      const authUrl = r.body.auth_url as string;
      const answer = await idp.login(authUrl, account);
      return { authUrl, ...answer, nonce: new URL(authUrl).searchParams.get('nonce') as string };
    },
    callback: (body) => call(kh.address, 'POST', CALLBACK, undefined, body),
    async stop() {
      await idp.stop();
      await kh.stop();
    },
  };
  return setup;
}

/** The error code of a JSON answer, checked with its status. */
export function assertRefused(r: { status: number; body: any; text: string }, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.error?.code, code, r.text);
  if (message) assert.match(r.body.error.message as string, message);
}

/** Audit records of SSO routes since `before`. */
export function ssoAudit(kh: DevServer, before = 0): AuditLine[] {
  return auditRecords(kh.dataDir).slice(before).filter((e) => e.operation?.startsWith('auth.oidc.') === true);
}

/** Fails if any of `secrets` appears anywhere in the audit log or the server's output. */
export function assertNotLogged(kh: DevServer, secrets: string[]): void {
  const log = JSON.stringify(auditRecords(kh.dataDir));
  const output = kh.output();
  for (const s of secrets.filter((x) => x.length >= 8)) {
    assert.equal(log.includes(s), false, `the audit log holds a secret (${s.slice(0, 6)}…)`);
    assert.equal(output.includes(s), false, `the server output holds a secret (${s.slice(0, 6)}…)`);
  }
}

/** Replaces the signature of a compact JWS by one that is well-formed but wrong. */
export function tamperSignature(jws: string): string {
  const [h, p, s] = jws.split('.') as [string, string, string];
  const bytes = Buffer.from(s, 'base64url');
  bytes[0] = (bytes[0] as number) ^ 0x01;
  return `${h}.${p}.${bytes.toString('base64url')}`;
}
