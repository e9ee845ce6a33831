/**
 * OIDC single sign-on, end to end: the configuration (checked against the provider's discovery
 * document before it is stored), the start of a login (a flow in the barrier, the authorization
 * URL), and its end (the flow consumed once, the code exchanged, the ID token verified, the
 * groups claim mapped to keyhold groups, a short-lived token for the person `oidc:<sub>`).
 */
import type { BarrierView } from '../../barrier/view.js';
import { KeyholdError } from '../../errors.js';
import type { TokenStore } from '../tokens.js';
import { authorizationUrl } from './auth-url.js';
import { OidcConfigStore, redactConfig, type OidcConfigView } from './config-store.js';
import { discover, DiscoveryCache } from './discovery.js';
import { FlowStore } from './flows.js';
import { verifyIdToken } from './id-token.js';
import { exchangeCode } from './token-endpoint.js';
import type { OidcConfig, OidcLoginResult } from './types.js';
import { checkedUrl } from './urls.js';

/** What SSO needs of the groups (src/groups/, the GroupStore): the policies an SSO person's groups confer. */
export interface GroupPolicies {
  policiesFor(person: { operator?: string; externalGroups?: string[] }): Promise<{ groups: string[]; policies: string[] }>;
}

export interface OidcAuthOptions {
  /** Lifetime of a person's token (operators.tokenTtlSeconds; default 1 h). */
  tokenTtlSeconds: number;
  /**
   * Policies an SSO login is never given (the runtime passes `root`): the identity provider is
   * outside keyhold's root of trust, so whoever controls it must not become root here.
   */
  neverConferred: readonly string[];
}

export class OidcAuth {
  readonly #config: OidcConfigStore;
  readonly #flows: FlowStore;
  readonly #discovery = new DiscoveryCache();
  readonly #unwatch: () => void;

  constructor(view: BarrierView, private readonly tokens: Pick<TokenStore, 'create'>, private readonly groups: GroupPolicies, private readonly options: OidcAuthOptions) {
    this.#config = new OidcConfigStore(view);
    this.#flows = new FlowStore(view);
    // Another replica changed the configuration: its provider's metadata is fetched afresh.
    this.#unwatch = this.#config.onChange(() => this.#discovery.clear());
  }

  close(): void {
    this.#unwatch();
  }

  /**
   * Checks `config` against the provider's discovery document (its issuer must be this one; it
   * must support what keyhold needs) and stores it. Nothing is stored when the check fails.
   * Without a client secret, the stored one is kept if the issuer and client are the same.
   */
  async configure(input: Omit<OidcConfig, 'clientSecret'> & { clientSecret?: string }): Promise<void> {
    // OIDC Discovery §2: an issuer has no query (nor fragment, which checkedUrl refuses everywhere).
    if (checkedUrl(input.issuer, 'issuer', 'ERR_OIDC_CONFIG_INVALID').search !== '') throw new KeyholdError('ERR_OIDC_CONFIG_INVALID', 'issuer must not have a query');
    for (const uri of input.redirectUris) checkedUrl(uri, `redirect URI ${uri.slice(0, 256)}`, 'ERR_OIDC_CONFIG_INVALID');
    if (!input.scopes.includes('openid')) throw new KeyholdError('ERR_OIDC_CONFIG_INVALID', 'scopes must include "openid"');
    let clientSecret = input.clientSecret;
    if (clientSecret === undefined) {
      const current = await this.#config.load();
      if (!current || current.issuer !== input.issuer || current.clientId !== input.clientId) {
        throw new KeyholdError('ERR_OIDC_CONFIG_INVALID', 'client_secret is required (it may be left out only to keep the stored one for the same issuer and client_id)');
      }
      clientSecret = current.clientSecret;
    }
    const metadata = await discover(input.issuer, 'ERR_OIDC_DISCOVERY_INVALID');
    await this.#config.save({ ...input, clientSecret });
    this.#discovery.set(metadata);
  }

  /**
   * Turns SSO off: no login can begin or end (a flow under way finds no configuration). Tokens
   * already issued live on until they expire or are revoked by accessor.
   */
  async removeConfig(): Promise<void> {
    await this.#loaded();
    await this.#config.remove();
    this.#discovery.clear();
  }

  async describeConfig(): Promise<OidcConfigView> {
    return redactConfig(await this.#loaded());
  }

  async #loaded(): Promise<OidcConfig> {
    const config = await this.#config.load();
    if (!config) throw new KeyholdError('ERR_OIDC_NOT_CONFIGURED', 'OIDC login is not configured (PUT /v1/auth/oidc/config)');
    return config;
  }

  /** Begins a login: the provider's authorization URL, and the value of the browser-binding cookie. */
  async startLogin(redirectUri: string): Promise<{ authUrl: string; browserBinding: string }> {
    const config = await this.#loaded();
    if (!config.redirectUris.includes(redirectUri)) throw new KeyholdError('ERR_OIDC_REDIRECT_URI_INVALID', 'redirect_uri is not one of the configured redirect_uris');
    const metadata = await this.#discovery.get(config.issuer);
    const flow = await this.#flows.create({ redirectUri, issuer: config.issuer, clientId: config.clientId, ...(config.maxAgeSeconds !== undefined ? { maxAgeSeconds: config.maxAgeSeconds } : {}) });
    return { authUrl: authorizationUrl(metadata, config, redirectUri, flow), browserBinding: flow.browserBinding };
  }

  /**
   * Ends a login. `browserBinding`: for the browser form of the callback, the cookie set when the
   * login began (null when it is missing): the flow must have been begun by this browser.
   */
  async finishLogin(input: { code: string; state: string; browserBinding?: string | null }, note: (facts: Record<string, string>) => void): Promise<OidcLoginResult> {
    const flow = await this.#flows.consume(input.state, input.browserBinding);
    const config = await this.#loaded();
    if (config.issuer !== flow.issuer || config.clientId !== flow.clientId) throw new KeyholdError('ERR_OIDC_STATE_INVALID', 'the OIDC configuration changed since this login began: start it again');
    const metadata = await this.#discovery.get(config.issuer);
    const idToken = await exchangeCode(metadata, config, { code: input.code, codeVerifier: flow.codeVerifier, redirectUri: flow.redirectUri });
    const person = await verifyIdToken(idToken, metadata, {
      clientId: config.clientId, nonce: flow.nonce, groupsClaim: config.groupsClaim, ...(flow.maxAgeSeconds !== undefined ? { maxAgeSeconds: flow.maxAgeSeconds } : {}),
    });
    note({ oidc_subject: person.subject, ...(person.name ? { oidc_name: person.name } : {}), oidc_groups: person.groups.join(',').slice(0, 1024) });
    const mapped = await this.groups.policiesFor({ externalGroups: person.groups });
    note({ groups: mapped.groups.join(',').slice(0, 1024) });
    if (mapped.policies.length === 0) {
      throw new KeyholdError('ERR_OIDC_GROUPS_UNMAPPED', person.groups.length === 0
        ? `the ID token has no "${config.groupsClaim}" claim values: no keyhold group maps this person, so there is nothing they may do`
        : 'none of this person\'s groups at the provider is mapped to a keyhold group with policies', { details: { reason: 'no mapped group' } });
    }
    const forbidden = mapped.policies.filter((p) => this.options.neverConferred.includes(p));
    if (forbidden.length > 0) throw new KeyholdError('ERR_PERMISSION_DENIED', `an SSO login is never given these policies: ${forbidden.join(', ')}; map the groups to other policies`, { details: { reason: `would confer ${forbidden.join(', ')}` } });
    const selectors = [`oidc:${person.subject}`];
    const { token, record } = await this.tokens.create({ policies: mapped.policies, ttlSeconds: this.options.tokenTtlSeconds, displayName: `oidc:${person.name ?? person.subject}`.slice(0, 256), selectors });
    return { token, accessor: record.accessor as string, expiresAt: record.expiresAt as string, policies: record.policies, groups: mapped.groups, person, selectors };
  }

  /** Spends the flow of `state` if there is one (the provider answered an error instead of a code). */
  async discardFlow(state: string): Promise<void> {
    await this.#flows.consume(state).catch(() => undefined);
  }

  /** Deletes abandoned logins' flows (a background job on the leader). */
  sweepFlows(): Promise<number> {
    return this.#flows.sweepExpired();
  }
}
