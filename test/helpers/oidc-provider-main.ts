/**
 * The child process of test/helpers/oidc-provider.ts: panva's `oidc-provider` (npm, unmodified) on
 * 127.0.0.1, with the development login pages (any password; the login must be a known account).
 * Settings come from a JSON file named by OIDC_PROVIDER_SETTINGS; the accounts are re-read from
 * their own file at each login, so a test can change someone's groups without a restart.
 * Prints `oidc-provider listening on <port>` once it serves.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';

export interface ProviderSettings {
  /** What the provider calls itself (the helper's front door, not this process's port). */
  issuer: string;
  clients: Array<{ client_id: string; client_secret: string; redirect_uris: string[] }>;
  /** A JSON file: `{ "<login>": { "groups": [...], "email"?: "..." } }`. */
  accountsFile: string;
  /** ID token lifetime, seconds. */
  idTokenTtlSeconds: number;
  /** Shifts this provider's clock (its iat, exp, auth_time): negative = behind keyhold's. */
  clockOffsetSeconds: number;
}

interface Account { groups?: unknown; email?: string; name?: string }
interface ProviderLike {
  callback(): (req: unknown, res: unknown) => void;
  Grant: new (input: { clientId: string; accountId: string }) => { addOIDCScope(scope: string): void; addOIDCClaims(claims: string[]): void; save(): Promise<string> };
}
interface GrantContext { oidc: { client: { clientId: string }; session: { accountId: string; grantIdFor(clientId: string): string | undefined }; result?: { consent?: { grantId?: string } }; provider: { Grant: ProviderLike['Grant'] & { find(id: string): Promise<unknown> } } } }

const settings = JSON.parse(readFileSync(process.env.OIDC_PROVIDER_SETTINGS as string, 'utf8')) as ProviderSettings;
if (settings.clockOffsetSeconds !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + settings.clockOffsetSeconds * 1000;
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

// Untyped package: its constructor, as used here.
const { default: Provider } = (await import('oidc-provider' as string)) as { default: new (issuer: string, config: object) => ProviderLike };
const provider = new Provider(settings.issuer, {
  clients: settings.clients.map((c) => ({
    ...c, response_types: ['code'], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'RS256',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: ['keyhold-tests-only'] },
  async findAccount(_ctx: unknown, id: string) {
    const accounts = JSON.parse(readFileSync(settings.accountsFile, 'utf8')) as Record<string, Account>;
    const account = Object.hasOwn(accounts, id) ? accounts[id] : undefined;
    if (!account) return undefined;
    return {
      accountId: id,
      claims: () => ({ sub: id, preferred_username: id, ...(account.email ? { email: account.email } : {}), ...(account.groups !== undefined ? { groups: account.groups } : {}) }),
    };
  },
  claims: { openid: ['sub'], email: ['email'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  // Scope claims in the ID token itself (as Keycloak, Okta and Entra put groups there), not only at userinfo.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: settings.idTokenTtlSeconds, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600, AccessToken: 600 },
  // A first-party client: consent is given once logged in (Keycloak's "consent required: off").
  async loadExistingGrant(ctx: GrantContext) {
    const existing = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) return ctx.oidc.provider.Grant.find(existing);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

const server = createServer(provider.callback());
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`oidc-provider listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
