/**
 * Reads from OCI registries for attestation: GETs with a size cap enforced while reading, and the
 * registry token flow (Docker's "token authentication", what Docker Hub, GHCR, Quay and Harbor
 * answer a first anonymous GET with: 401 and `WWW-Authenticate: Bearer realm=…,service=…,scope=…`).
 * keyhold asks the realm for a pull token for that one repository and retries once: anonymously,
 * or with the registry's configured credentials (Basic, to the token service only). A registry that
 * answers with a Basic challenge gets the credentials directly. Without credentials, a registry that
 * refuses anonymous pulls is a denial.
 */
import { readCapped } from '../read-capped.js';

/** Docker Hub's API host: `docker.io/…` in a pod spec is served from here. */
const DOCKER_HUB_API = 'registry-1.docker.io';
const TIMEOUT_MS = 5000;
const MAX_TOKEN_BYTES = 64 * 1024;

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
}

export interface RegistryResponse {
  status: number;
  body: Buffer;
}

interface CachedToken {
  token: string;
  until: number;
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters; undefined for any other scheme. */
export function parseBearerChallenge(header: string | null): Record<string, string> | undefined {
  if (!header || !/^bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const match of header.slice(header.indexOf(' ') + 1).matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[(match[1] as string).toLowerCase()] = match[2] as string;
  return params;
}

const tooLarge = (detail: string) => new RegistryError(`response too large (${detail})`);

export interface Credentials {
  username: string;
  password: string;
}

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

export class RegistryClient {
  readonly #tokens = new Map<string, CachedToken>();

  /** `credentials(host)`: the pull credentials configured for a registry host (as written in image references), if any. */
  constructor(private readonly maxBytes: number, private readonly credentials: (host: string) => Credentials | undefined = () => undefined) {}

  /**
   * GET `/v2/<repository>/<path>` from the registry `host` (over http only when `insecure`).
   * Other statuses than 401 are returned as they are; a refused token exchange is a RegistryError.
   */
  async get(host: string, repository: string, path: string, options: { accept?: string; insecure: boolean }): Promise<RegistryResponse> {
    const apiHost = host === 'docker.io' ? DOCKER_HUB_API : host;
    const url = `${options.insecure ? 'http' : 'https'}://${apiHost}/v2/${repository}/${path}`;
    const credentials = this.credentials(host);
    // A token got with credentials is not one got without: changing them must not reuse the other.
    const cacheKey = `${apiHost}/${repository}|${credentials ? credentials.username : ''}`;
    const cached = this.#tokens.get(cacheKey);
    const token = cached && cached.until > Date.now() ? cached.token : undefined;
    let response = await this.#fetch(url, options.accept, token && `Bearer ${token}`);
    if (response.status === 401) {
      const header = response.headers.get('www-authenticate');
      await response.body?.cancel().catch(() => undefined);
      const challenge = parseBearerChallenge(header);
      let authorization: string;
      if (challenge?.realm) {
        const fresh = await this.#token(challenge, repository, options.insecure, credentials);
        this.#tokens.set(cacheKey, fresh);
        authorization = `Bearer ${fresh.token}`;
      } else if (credentials && /^basic\s/i.test(header ?? '')) {
        // Basic credentials travel in clear over http: only to registries the role already reads over http.
        authorization = basic(credentials);
      } else {
        throw new RegistryError(credentials ? 'the registry asks for an authentication scheme keyhold does not speak' : 'the registry wants credentials keyhold does not have');
      }
      response = await this.#fetch(url, options.accept, authorization);
      if (response.status === 401) {
        await response.body?.cancel().catch(() => undefined);
        throw new RegistryError(credentials ? `the registry refused the credentials configured for ${host}` : 'the registry refused its own anonymous pull token');
      }
    }
    return { status: response.status, body: await readCapped(response, this.maxBytes, tooLarge) };
  }

  async #fetch(url: string, accept: string | undefined, authorization: string | undefined): Promise<Response> {
    try {
      // fetch drops Authorization when a redirect leaves the registry's origin (blob storage).
      return await fetch(url, {
        headers: { ...(accept ? { accept } : {}), ...(authorization ? { authorization } : {}) },
        signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'follow',
      });
    } catch (err) {
      throw new RegistryError((err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message);
    }
  }

  /** A pull token for one repository from the realm the registry named (anonymous without credentials). */
  async #token(challenge: Record<string, string>, repository: string, insecure: boolean, credentials: Credentials | undefined): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm as string);
    } catch {
      throw new RegistryError('the registry named a token realm that is not a URL');
    }
    // The realm comes from the registry, which comes from the pod spec: only https (plain http only
    // for a registry the role already lets keyhold reach over http), never credentials in the URL.
    if (!(realm.protocol === 'https:' || (insecure && realm.protocol === 'http:')) || realm.username || realm.password) {
      throw new RegistryError(`the registry named a token realm keyhold will not use (${realm.protocol}//${realm.host})`);
    }
    if (challenge.service) realm.searchParams.set('service', challenge.service);
    realm.searchParams.set('scope', `repository:${repository}:pull`);
    const response = await this.#fetch(realm.toString(), 'application/json', credentials && basic(credentials));
    const body = await readCapped(response, MAX_TOKEN_BYTES, tooLarge);
    if (response.status !== 200) throw new RegistryError(`the registry's token service answered HTTP ${response.status} for ${credentials ? `a pull token for ${credentials.username}` : 'an anonymous pull token'}`);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new RegistryError('the registry\'s token service sent invalid JSON');
    }
    const token = typeof parsed.token === 'string' ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : undefined;
    if (!token) throw new RegistryError('the registry\'s token service sent no token');
    // The spec's default lifetime is 60 s; keep a margin, and never trust a huge one.
    const seconds = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? Math.min(parsed.expires_in, 3600) : 60;
    return { token, until: Date.now() + Math.max(seconds - 10, 1) * 1000 };
  }
}
