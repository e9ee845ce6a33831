/**
 * Typed HTTP client of the keyhold API. It imports nothing from the server: the agent, webhook
 * and KMS plugin build on this alone.
 */
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
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (cause) {
      throw new KeyholdApiError(0, 'ERR_UNREACHABLE', `cannot reach keyhold at ${this.base}: ${(cause as Error).message}`);
    }
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) {
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
  createToken(policies: string[], ttl?: number | string) {
    return this.request<{ token: string; id: string; policies: string[]; expires_at?: string }>('POST', '/v1/tokens', { policies, ...(ttl === undefined ? {} : { ttl }) });
  }
}

export interface HealthResponse {
  initialized: boolean;
  sealed: boolean;
  version: string;
  hsm: { ok: boolean; token: string; latency_ms: number; error?: string };
  audit: { ok: boolean };
}

export interface KeyDescription {
  name: string;
  type: string;
  protection: string;
  created_at: string;
  latest_version: number;
  min_decryption_version: number;
  deletion_allowed: boolean;
  disabled: boolean;
  versions: Array<{ version: number; created_at: string; public_key?: string }>;
}

const enc = encodeURIComponent;
const encPath = (path: string) => path.split('/').map(encodeURIComponent).join('/');
