/**
 * Typed HTTP client of the keyhold API. It imports nothing from the server: the agent, webhook
 * and KMS plugin build on this alone.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KeyDescription } from '../wire/key-description.js';

/**
 * One HTTP exchange with node:http(s). Not fetch: fetch loads undici, about 12 MB of RSS, and the
 * in-pod agent built on this client must stay small.
 */
function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export class KeyholdApiError extends Error {
  override readonly name = 'KeyholdApiError';
  constructor(readonly status: number, readonly code: string, message: string, readonly requestId?: string) {
    super(message);
  }
}

export interface ClientOptions {
  address: string;
  token?: string;
  timeoutMs?: number;
}

export class KeyholdClient {
  private readonly base: string;

  constructor(private readonly options: ClientOptions) {
    this.base = options.address.replace(/\/+$/, '');
  }

  /** Builds a client from KEYHOLD_ADDR and KEYHOLD_TOKEN. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): KeyholdClient {
    return new KeyholdClient({ address: env.KEYHOLD_ADDR ?? 'http://127.0.0.1:8200', token: env.KEYHOLD_TOKEN });
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let response: { status: number; text: string };
    try {
      response = await send(new URL(this.base + path), method, headers, payload, this.options.timeoutMs ?? 30_000);
    } catch (cause) {
      throw new KeyholdApiError(0, 'ERR_UNREACHABLE', `cannot reach keyhold at ${this.base}: ${(cause as Error).message}`);
    }
    const parsed = response.text ? (JSON.parse(response.text) as unknown) : undefined;
    if (response.status < 200 || response.status > 299) {
      const error = (parsed as { error?: { code?: string; message?: string }; request_id?: string } | undefined);
      throw new KeyholdApiError(response.status, error?.error?.code ?? 'ERR_UNKNOWN', error?.error?.message ?? `HTTP ${response.status}`, error?.request_id);
    }
    return parsed as T;
  }

  health() { return this.request<HealthResponse>('GET', '/v1/sys/health'); }
  createKey(name: string, type: string, protection: 'hsm' | 'wrapped', deletionAllowed?: boolean) {
    return this.request<KeyDescription>('POST', '/v1/keys', { name, type, protection, ...(deletionAllowed === undefined ? {} : { deletion_allowed: deletionAllowed }) });
  }
  getKey(name: string) { return this.request<KeyDescription>('GET', `/v1/keys/${enc(name)}`); }
  listKeys() { return this.request<{ keys: string[] }>('GET', '/v1/keys'); }
  rotateKey(name: string) { return this.request<KeyDescription>('POST', `/v1/keys/${enc(name)}/rotate`); }
  configureKey(name: string, config: { min_decryption_version?: number; deletion_allowed?: boolean; disabled?: boolean }) {
    return this.request<KeyDescription>('POST', `/v1/keys/${enc(name)}/config`, config);
  }
  deleteKey(name: string) { return this.request<void>('DELETE', `/v1/keys/${enc(name)}`); }
  encrypt(name: string, plaintext: Buffer, context?: Buffer) {
    return this.request<{ ciphertext: string; version: number }>('POST', `/v1/keys/${enc(name)}/encrypt`, { plaintext: plaintext.toString('base64'), ...(context ? { context: context.toString('base64') } : {}) });
  }
  async decrypt(name: string, ciphertext: string, context?: Buffer): Promise<Buffer> {
    const r = await this.request<{ plaintext: string }>('POST', `/v1/keys/${enc(name)}/decrypt`, { ciphertext, ...(context ? { context: context.toString('base64') } : {}) });
    return Buffer.from(r.plaintext, 'base64');
  }
  rewrap(name: string, ciphertext: string, context?: Buffer) {
    return this.request<{ ciphertext: string; version: number }>('POST', `/v1/keys/${enc(name)}/rewrap`, { ciphertext, ...(context ? { context: context.toString('base64') } : {}) });
  }
  dataKey(name: string, options: { bits?: 128 | 256; plaintext?: boolean } = {}) {
    return this.request<{ ciphertext: string; version: number; plaintext?: string }>('POST', `/v1/keys/${enc(name)}/datakey`, options);
  }
  sign(name: string, input: Buffer) { return this.request<{ signature: string; version: number }>('POST', `/v1/keys/${enc(name)}/sign`, { input: input.toString('base64') }); }
  verify(name: string, input: Buffer, signature: string) {
    return this.request<{ valid: boolean; version: number }>('POST', `/v1/keys/${enc(name)}/verify`, { input: input.toString('base64'), signature });
  }
  putSecret(path: string, data: Record<string, unknown>, cas?: number) {
    return this.request<{ version: number; created_at: string }>('PUT', `/v1/secrets/${encPath(path)}`, { data, ...(cas === undefined ? {} : { cas }) });
  }
  getSecret(path: string, version?: number) {
    return this.request<{ data: Record<string, unknown>; version: number; created_at: string }>('GET', `/v1/secrets/${encPath(path)}${version ? `?version=${version}` : ''}`);
  }
  listSecrets(folder = '') {
    return this.request<{ keys: string[] }>('GET', folder ? `/v1/secrets/${encPath(folder)}?list=true` : '/v1/secrets');
  }
  deleteSecret(path: string, versions?: number[]) {
    return this.request<{ versions: number[] }>('DELETE', `/v1/secrets/${encPath(path)}${versions ? `?versions=${versions.join(',')}` : ''}`);
  }
  undeleteSecret(path: string, versions: number[]) { return this.request<{ versions: number[] }>('POST', `/v1/secret-undelete/${encPath(path)}`, { versions }); }
  destroySecret(path: string, versions: number[]) { return this.request<{ versions: number[] }>('POST', `/v1/secret-destroy/${encPath(path)}`, { versions }); }
  secretMetadata(path: string) { return this.request<Record<string, unknown>>('GET', `/v1/secret-metadata/${encPath(path)}`); }
  putPolicy(name: string, rules: Array<{ path: string; capabilities: string[] }>) { return this.request<unknown>('PUT', `/v1/policies/${enc(name)}`, { rules }); }
  /** Exchanges a projected service-account token for a keyhold token (no bearer token needed). */
  kubernetesLogin(role: string, jwt: string) {
    return this.request<{ token: string; accessor: string; ttl: number; policies: string[]; identity: { namespace: string; service_account: string; pod_name?: string; pod_uid?: string; selectors: string[] } }>(
      'POST', '/v1/auth/kubernetes/login', { role, jwt });
  }
  /** The same client with another token (after a login). */
  withToken(token: string): KeyholdClient {
    return new KeyholdClient({ ...this.options, token });
  }
  /** A child of this client's token (an orphan with `orphan`, which needs create on sys/tokens/orphan). */
  createToken(policies: string[], ttl?: number | string, options: { orphan?: boolean } = {}) {
    return this.request<{ token: string; id: string; accessor: string; policies: string[]; expires_at: string }>('POST', '/v1/tokens', {
      policies, ...(ttl === undefined ? {} : { ttl }), ...(options.orphan ? { no_parent: true } : {}),
    });
  }
  lookupAccessor(accessor: string) {
    return this.request<{ accessor: string; policies: string[]; created_at: string; expires_at?: string; display_name?: string; parent_accessor?: string; orphan: boolean; selectors?: string[] }>(
      'GET', `/v1/tokens/accessors/${enc(accessor)}`);
  }
  /** Revokes the token with this accessor and all its descendants. */
  revokeAccessor(accessor: string) { return this.request<void>('DELETE', `/v1/tokens/accessors/${enc(accessor)}`); }
}

export interface HealthResponse {
  initialized: boolean;
  sealed: boolean;
  version: string;
  hsm: { ok: boolean; token: string; latency_ms: number; error?: string };
  audit: {
    ok: boolean; reason?: string; terminal?: boolean; failed_at?: string; rotated_files: number; chain?: string;
    last_checkpoint?: { seq: number; head_seq: number; time: string };
  };
  /** Reported only: pod-bound logins are refused (503) while the pod watch is not synced. */
  kubernetes: { configured: boolean; ok: boolean; pods_synced?: boolean; service_accounts_synced?: boolean };
}

export type { KeyDescription };

const enc = encodeURIComponent;
const encPath = (path: string) => path.split('/').map(encodeURIComponent).join('/');
