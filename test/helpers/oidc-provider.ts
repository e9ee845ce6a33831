/**
 * A real OpenID provider for tests: panva's `oidc-provider` (npm, unmodified) in a child process
 * on 127.0.0.1 (test/helpers/oidc-provider-main.ts), behind a front door in the test process that
 * passes every request through unchanged unless a test asks it to misbehave.
 *
 * API (also used by the console's browser SSO test):
 *
 *   const idp = await startOidcProvider({ redirectUris: [`${keyhold}/v1/auth/oidc/callback`], accounts: { alice: { groups: ['kh-ops'] } } });
 *   idp.issuer                       // http://127.0.0.1:<port> (what keyhold is configured with)
 *   idp.client                       // { client_id, client_secret, redirect_uris }: the client keyhold uses
 *   idp.otherClient                  // a second registered client (same redirect URIs): for "ID token issued to someone else"
 *   idp.setAccounts({ bob: { groups: ['x'], email: 'b@example.org' } })   // takes effect at the next login
 *   await idp.login(authUrl, 'alice')  // drives the provider's login (and consent, if asked) pages with
 *                                    // fetch, following redirects with a cookie jar, until the provider
 *                                    // redirects to a redirect URI: → { code, state, iss, location }
 *   await idp.codeFlow({ client: idp.otherClient, account: 'alice', nonce })   // a whole code flow as
 *                                    // that client (PKCE S256), straight from Node: → the token response ({ id_token, ... })
 *   idp.onTokenResponse((body) => ({ ...body, id_token: other }))   // the front door rewrites token
 *                                    // endpoint answers (JSON) until called with undefined
 *   idp.setReachable('up' | 'refuse' | 'hang')   // refuse: connections are reset; hang: never answered
 *   await idp.stop()
 *
 * In a browser, the development login page has a text input `login` (any known account), a
 * password input `password` (anything) and a submit button "Sign-in"; consent is pre-granted.
 * Options: `idTokenTtlSeconds` (default 300), `clockOffsetSeconds` (the provider's clock against
 * the real one, e.g. -120 for tokens that expired on arrival).
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProviderSettings } from './oidc-provider-main.js';
import { killOnExit, spawnUntilReady } from './processes.js';
import { tempDir } from './temp.js';

export interface OidcClient { client_id: string; client_secret: string; redirect_uris: string[] }
export interface OidcAccount { groups?: unknown; email?: string }
export type TokenResponseRewrite = (body: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>;

export interface OidcProviderOptions {
  redirectUris: string[];
  accounts?: Record<string, OidcAccount>;
  idTokenTtlSeconds?: number;
  clockOffsetSeconds?: number;
}

export interface AuthorizationResponse { code: string; state: string; iss: string | null; location: string }

export interface TestOidcProvider {
  issuer: string;
  client: OidcClient;
  otherClient: OidcClient;
  setAccounts(accounts: Record<string, OidcAccount>): void;
  login(authUrl: string, account: string): Promise<AuthorizationResponse>;
  codeFlow(input: { client: OidcClient; account: string; nonce: string; scope?: string }): Promise<Record<string, unknown>>;
  onTokenResponse(rewrite: TokenResponseRewrite | undefined): void;
  setReachable(mode: 'up' | 'refuse' | 'hang'): void;
  /** Requests the front door has seen (method and path), for tests that check what keyhold asked. */
  seen(): Array<{ method: string; path: string }>;
  stop(): Promise<void>;
}

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'oidc-provider-main.js');

/** A minimal cookie jar: name → value (the provider's cookies are all on its one host). */
class Jar {
  readonly #cookies = new Map<string, string>();
  take(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = (pair as string).indexOf('=');
      const name = (pair as string).slice(0, eq).trim();
      const value = (pair as string).slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.#cookies].map(([n, v]) => `${n}=${v}`).join('; ');
  }
}

function formOf(html: string, base: string): { action: string; fields: Record<string, string> } | undefined {
  const form = /<form[^>]*action="([^"]+)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const fields: Record<string, string> = {};
  for (const input of (form[2] as string).matchAll(/<input([^>]*)>/gi)) {
    const attrs = input[1] as string;
    const name = /name="([^"]+)"/.exec(attrs)?.[1];
    if (name) fields[name] = /value="([^"]*)"/.exec(attrs)?.[1] ?? '';
  }
  return { action: new URL((form[1] as string).replace(/&amp;/g, '&'), base).href, fields };
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  const dir = tempDir('keyhold-oidc-');
  const accountsFile = join(dir, 'accounts.json');
  const setAccounts = (accounts: Record<string, OidcAccount>) => writeFileSync(accountsFile, JSON.stringify(accounts));
  setAccounts(options.accounts ?? {});

  // The front door: every request goes through it to the provider, so the issuer is its address.
  let upstreamPort = 0;
  let mode: 'up' | 'refuse' | 'hang' = 'up';
  let rewrite: TokenResponseRewrite | undefined;
  const seen: Array<{ method: string; path: string }> = [];
  const hanging = new Set<Socket>();
  const front: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (mode === 'refuse') { req.socket.destroy(); return; }
    if (mode === 'hang') { hanging.add(req.socket); return; }
    const path = req.url ?? '/';
    seen.push({ method: req.method ?? 'GET', path: path.split('?')[0] as string });
    const isToken = req.method === 'POST' && path.split('?')[0] === '/token';
    const upstream = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: req.method, path, headers: req.headers }, (answer) => {
      const currentRewrite = rewrite;
      if (!isToken || !currentRewrite || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        void (async () => {
          const body = await currentRewrite(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
          const text = JSON.stringify(body);
          const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(text)) };
          delete headers['transfer-encoding'];
          res.writeHead(200, headers);
          res.end(text);
        })().catch((err: unknown) => { res.writeHead(500); res.end(String(err)); });
      });
    });
    upstream.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  await new Promise<void>((res) => front.listen(0, '127.0.0.1', res));
  const issuer = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;

  const secret = () => randomBytes(24).toString('base64url');
  const client: OidcClient = { client_id: 'keyhold', client_secret: secret(), redirect_uris: options.redirectUris };
  const otherClient: OidcClient = { client_id: 'another-app', client_secret: secret(), redirect_uris: options.redirectUris };
  const settings: ProviderSettings = {
    issuer, clients: [client, otherClient], accountsFile,
    idTokenTtlSeconds: options.idTokenTtlSeconds ?? 300, clockOffsetSeconds: options.clockOffsetSeconds ?? 0,
  };
  const settingsFile = join(dir, 'settings.json');
  writeFileSync(settingsFile, JSON.stringify(settings));
  let child;
  try {
    child = await spawnUntilReady('oidc-provider', process.execPath, [MAIN], { ready: /oidc-provider listening on (\d+)/, env: { OIDC_PROVIDER_SETTINGS: settingsFile } });
  } catch (err) {
    front.close();
    throw err;
  }
  killOnExit(child.child);
  upstreamPort = Number(child.ready[1]);

  const isRedirectUri = (location: string) => options.redirectUris.some((uri) => location.split('?')[0] === uri);

  async function login(authUrl: string, account: string): Promise<AuthorizationResponse> {
    const jar = new Jar();
    let url = authUrl;
    let method = 'GET';
    let body: string | undefined;
    for (let hop = 0; hop < 20; hop++) {
      const response = await fetch(url, {
        method, redirect: 'manual',
        headers: { cookie: jar.header(), ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(body !== undefined ? { body } : {}),
      });
      jar.take(response);
      method = 'GET';
      body = undefined;
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        const next = new URL(location, url).href;
        await response.body?.cancel();
        if (isRedirectUri(next)) {
          const q = new URL(next).searchParams;
          const code = q.get('code');
          const state = q.get('state');
          if (!code || state === null) throw new Error(`the provider redirected without a code: ${next}`);
          return { code, state, iss: q.get('iss'), location: next };
        }
        url = next;
        continue;
      }
      const html = await response.text();
      const form = formOf(html, url);
      if (response.status !== 200 || !form) throw new Error(`the provider answered ${response.status} at ${url}:\n${html.slice(0, 2000)}`);
      const fields = { ...form.fields };
      if (fields.prompt === 'login') Object.assign(fields, { login: account, password: 'any' });
      url = form.action;
      method = 'POST';
      body = new URLSearchParams(fields).toString();
    }
    throw new Error('the provider\'s login did not end in 20 redirects');
  }

  async function codeFlow(input: { client: OidcClient; account: string; nonce: string; scope?: string }): Promise<Record<string, unknown>> {
    const verifier = randomBytes(32).toString('base64url');
    const redirectUri = input.client.redirect_uris[0] as string;
    const auth = new URL(`${issuer}/auth`);
    auth.search = new URLSearchParams({
      response_type: 'code', client_id: input.client.client_id, redirect_uri: redirectUri, scope: input.scope ?? 'openid email profile groups',
      state: randomBytes(16).toString('base64url'), nonce: input.nonce,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    }).toString();
    const { code } = await login(auth.href, input.account);
    const basic = Buffer.from(`${encodeURIComponent(input.client.client_id)}:${encodeURIComponent(input.client.client_secret)}`).toString('base64');
    const saved = rewrite;
    rewrite = undefined;
    try {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }).toString(),
      });
      const json = await response.json() as Record<string, unknown>;
      if (response.status !== 200) throw new Error(`token endpoint: ${response.status} ${JSON.stringify(json)}`);
      return json;
    } finally {
      rewrite = saved;
    }
  }

  return {
    issuer, client, otherClient, setAccounts, login, codeFlow,
    onTokenResponse(fn) { rewrite = fn; },
    setReachable(next) {
      mode = next;
      if (next !== 'hang') for (const s of hanging) s.destroy();
    },
    seen: () => [...seen],
    async stop() {
      for (const s of hanging) s.destroy();
      front.closeAllConnections();
      await new Promise((res) => front.close(res));
      await child.stop();
    },
  };
}
