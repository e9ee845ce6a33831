/**
 * Typed HTTP client of the keyhold API. It imports nothing from the server: the agent, webhook
 * and KMS plugin build on this alone.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ApprovalList, ApprovalPending, ApprovalPolicyBody, ApprovalPolicyList, ApprovalPolicyView, ApprovalSweepResult, ApprovalView } from '../wire/approvals.js';
import type { AuditCheckpoint, AuditPublicKey } from '../wire/audit.js';
import type { LoginView } from '../wire/auth-kubernetes.js';
import type { ErrorResponse } from '../wire/errors.js';
import type { KeyDescription } from '../wire/key-description.js';
import type { CipherResult, DataKeyBody, DataKeyResult, DecryptResult, KeyConfigBody, KeyList, SignResult, VerifyResult } from '../wire/keys.js';
import type { PolicyRule, PolicyView } from '../wire/policies.js';
import type { SecretData, SecretList, SecretMetadata, SecretVersion, SecretVersions, SecretWritten } from '../wire/secrets.js';
import type { Health, RootRotationStatus } from '../wire/sys.js';
import type { AccessorView, TokenCreated } from '../wire/tokens.js';
import type { CapabilitiesView, EnrolConfirmView, EnrolView, GroupList, GroupView, OperatorList, OperatorView, PersonLoginView } from '../wire/operators.js';

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
      const error = (parsed as Partial<ErrorResponse> | undefined);
      throw new KeyholdApiError(response.status, error?.error?.code ?? 'ERR_UNKNOWN', error?.error?.message ?? `HTTP ${response.status}`, error?.request_id);
    }
    return parsed as T;
  }

  health() { return this.request<HealthResponse>('GET', '/v1/sys/health'); }
  rotateRoot() { return this.request<RootRotationStatus>('POST', '/v1/sys/seal/rotate-root'); }
  rootRotation() { return this.request<RootRotationStatus>('GET', '/v1/sys/seal/rotation'); }
  createKey(name: string, type: string, protection: 'hsm' | 'wrapped', deletionAllowed?: boolean) {
    return this.request<KeyDescription>('POST', '/v1/keys', { name, type, protection, ...(deletionAllowed === undefined ? {} : { deletion_allowed: deletionAllowed }) });
  }
  getKey(name: string) { return this.request<KeyDescription>('GET', `/v1/keys/${enc(name)}`); }
  listKeys() { return this.request<KeyList>('GET', '/v1/keys'); }
  rotateKey(name: string) { return this.request<KeyDescription>('POST', `/v1/keys/${enc(name)}/rotate`); }
  configureKey(name: string, config: KeyConfigBody) {
    return this.request<KeyDescription>('POST', `/v1/keys/${enc(name)}/config`, config);
  }
  deleteKey(name: string) { return this.request<void>('DELETE', `/v1/keys/${enc(name)}`); }
  encrypt(name: string, plaintext: Buffer, context?: Buffer) {
    return this.request<CipherResult>('POST', `/v1/keys/${enc(name)}/encrypt`, { plaintext: plaintext.toString('base64'), ...(context ? { context: context.toString('base64') } : {}) });
  }
  async decrypt(name: string, ciphertext: string, context?: Buffer): Promise<Buffer> {
    const r = await this.request<DecryptResult>('POST', `/v1/keys/${enc(name)}/decrypt`, { ciphertext, ...(context ? { context: context.toString('base64') } : {}) });
    return Buffer.from(r.plaintext, 'base64');
  }
  rewrap(name: string, ciphertext: string, context?: Buffer) {
    return this.request<CipherResult>('POST', `/v1/keys/${enc(name)}/rewrap`, { ciphertext, ...(context ? { context: context.toString('base64') } : {}) });
  }
  dataKey(name: string, options: Omit<DataKeyBody, 'context'> = {}) {
    return this.request<DataKeyResult>('POST', `/v1/keys/${enc(name)}/datakey`, options);
  }
  sign(name: string, input: Buffer) { return this.request<SignResult>('POST', `/v1/keys/${enc(name)}/sign`, { input: input.toString('base64') }); }
  verify(name: string, input: Buffer, signature: string) {
    return this.request<VerifyResult>('POST', `/v1/keys/${enc(name)}/verify`, { input: input.toString('base64'), signature });
  }
  putSecret(path: string, data: SecretData, cas?: number) {
    return this.request<SecretWritten>('PUT', `/v1/secrets/${encPath(path)}`, { data, ...(cas === undefined ? {} : { cas }) });
  }
  getSecret(path: string, version?: number) {
    return this.request<SecretVersion>('GET', `/v1/secrets/${encPath(path)}${version ? `?version=${version}` : ''}`);
  }
  listSecrets(folder = '') {
    return this.request<SecretList>('GET', folder ? `/v1/secrets/${encPath(folder)}?list=true` : '/v1/secrets');
  }
  deleteSecret(path: string, versions?: number[]) {
    return this.request<SecretVersions>('DELETE', `/v1/secrets/${encPath(path)}${versions ? `?versions=${versions.join(',')}` : ''}`);
  }
  undeleteSecret(path: string, versions: number[]) { return this.request<SecretVersions>('POST', `/v1/secret-undelete/${encPath(path)}`, { versions }); }
  destroySecret(path: string, versions: number[]) { return this.request<SecretVersions>('POST', `/v1/secret-destroy/${encPath(path)}`, { versions }); }
  secretMetadata(path: string) { return this.request<SecretMetadata>('GET', `/v1/secret-metadata/${encPath(path)}`); }
  putPolicy(name: string, rules: PolicyRule[]) { return this.request<PolicyView>('PUT', `/v1/policies/${enc(name)}`, { rules }); }
  /** Exchanges a projected service-account token for a keyhold token (no bearer token needed). */
  kubernetesLogin(role: string, jwt: string) {
    return this.request<LoginView>('POST', '/v1/auth/kubernetes/login', { role, jwt });
  }
  /** The same client with another token (after a login). */
  withToken(token: string): KeyholdClient {
    return new KeyholdClient({ ...this.options, token });
  }
  /** A child of this client's token (an orphan with `orphan`, which needs create on sys/tokens/orphan). */
  createToken(policies: string[], ttl?: number | string, options: { orphan?: boolean } = {}) {
    return this.request<TokenCreated>('POST', '/v1/tokens', {
      policies, ...(ttl === undefined ? {} : { ttl }), ...(options.orphan ? { no_parent: true } : {}),
    });
  }
  lookupAccessor(accessor: string) {
    return this.request<AccessorView>('GET', `/v1/tokens/accessors/${enc(accessor)}`);
  }
  /** The audit checkpoint public key, for `keyhold audit verify` (no token needed). */
  auditPublicKey() { return this.request<AuditPublicKey>('GET', '/v1/sys/audit/public-key'); }
  /** The latest signed audit checkpoint. */
  auditCheckpoint() { return this.request<AuditCheckpoint>('GET', '/v1/sys/audit/checkpoint'); }
  /** Revokes the token with this accessor and all its descendants. */
  revokeAccessor(accessor: string) { return this.request<void>('DELETE', `/v1/tokens/accessors/${enc(accessor)}`); }

  // Quorum approval (/v1/sys/approvals): a protected call answers 202 with an ApprovalPending instead of acting.
  listApprovals(state?: string, limit?: string) {
    const query = new URLSearchParams({ ...(state ? { state } : {}), ...(limit ? { limit } : {}) }).toString();
    return this.request<ApprovalList>('GET', `/v1/sys/approvals${query ? `?${query}` : ''}`);
  }
  /** One retention pass on the replica answering (`delete` on sys/approvals/requests). */
  sweepApprovals() { return this.request<ApprovalSweepResult>('POST', '/v1/sys/approvals/sweep'); }
  getApproval(id: string) { return this.request<ApprovalView>('GET', `/v1/sys/approvals/${enc(id)}`); }
  /** `paramsSha256`: the hash of the parameters the approver looked at; `code`: their TOTP (or recovery) code. */
  approveRequest(id: string, paramsSha256: string, code: string) {
    return this.request<ApprovalView>('POST', `/v1/sys/approvals/${enc(id)}/approve`, { params_sha256: paramsSha256, code });
  }
  denyRequest(id: string, code: string, reason?: string) {
    return this.request<ApprovalView>('POST', `/v1/sys/approvals/${enc(id)}/deny`, { code, ...(reason ? { reason } : {}) });
  }
  cancelApproval(id: string) { return this.request<ApprovalView>('POST', `/v1/sys/approvals/${enc(id)}/cancel`); }
  /** Runs the approved request once; the answer is the action's own. */
  executeApproval<T = unknown>(id: string) { return this.request<T>('POST', `/v1/sys/approvals/${enc(id)}/execute`); }
  listApprovalPolicies() { return this.request<ApprovalPolicyList>('GET', '/v1/sys/approvals/policies'); }
  getApprovalPolicy(name: string) { return this.request<ApprovalPolicyView>('GET', `/v1/sys/approvals/policies/${enc(name)}`); }
  /** An ApprovalPolicyView, or an ApprovalPending when changing the policy needs a quorum (its own). */
  putApprovalPolicy(name: string, body: ApprovalPolicyBody) {
    return this.request<ApprovalPolicyView | ApprovalPending>('PUT', `/v1/sys/approvals/policies/${enc(name)}`, body);
  }
  deleteApprovalPolicy(name: string) { return this.request<ApprovalPending | undefined>('DELETE', `/v1/sys/approvals/policies/${enc(name)}`); }

  // Operator accounts, groups and capabilities (issue 12). The logins need no token.
  operatorLogin(username: string, password: string, second: { totp: string } | { recovery_code: string }) {
    return this.request<PersonLoginView>('POST', '/v1/auth/operator/login', { username, password, ...second });
  }
  operatorEnrol(username: string, password: string) { return this.request<EnrolView>('POST', '/v1/auth/operator/enrol', { username, password }); }
  operatorEnrolConfirm(username: string, password: string, code: string) {
    return this.request<EnrolConfirmView>('POST', '/v1/auth/operator/enrol/confirm', { username, password, code });
  }
  operatorChangePassword(username: string, password: string, second: { totp: string } | { recovery_code: string }, newPassword: string) {
    return this.request<void>('POST', '/v1/auth/operator/password', { username, password, ...second, new_password: newPassword });
  }
  createOperator(name: string, password: string) { return this.request<OperatorView>('POST', '/v1/sys/operators', { name, password }); }
  listOperators() { return this.request<OperatorList>('GET', '/v1/sys/operators'); }
  getOperator(name: string) { return this.request<OperatorView>('GET', `/v1/sys/operators/${enc(name)}`); }
  deleteOperator(name: string) { return this.request<void>('DELETE', `/v1/sys/operators/${enc(name)}`); }
  resetOperator(name: string, password: string) { return this.request<OperatorView>('POST', `/v1/sys/operators/${enc(name)}/reset`, { password }); }
  putGroup(name: string, group: { policies: string[]; members: string[]; external_groups: string[] }) { return this.request<GroupView>('PUT', `/v1/sys/groups/${enc(name)}`, group); }
  getGroup(name: string) { return this.request<GroupView>('GET', `/v1/sys/groups/${enc(name)}`); }
  listGroups() { return this.request<GroupList>('GET', '/v1/sys/groups'); }
  deleteGroup(name: string) { return this.request<void>('DELETE', `/v1/sys/groups/${enc(name)}`); }
  capabilities(path: string) { return this.request<CapabilitiesView>('GET', `/v1/sys/capabilities?path=${enc(path)}`); }
}

/** `GET /v1/sys/health`. Its `kubernetes` part is reported only: pod-bound logins are refused (503) while the pod watch is not synced. */
export type HealthResponse = Health;

export type { KeyDescription };

const enc = encodeURIComponent;
const encPath = (path: string) => path.split('/').map(encodeURIComponent).join('/');
