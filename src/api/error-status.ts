import type { KeyholdErrorCode } from '../errors.js';

/** The one map from error code to HTTP status. Codes not listed are server faults (500). */
export const HTTP_STATUS: Readonly<Record<KeyholdErrorCode, number>> = {
  ERR_BAD_REQUEST: 400,
  ERR_JSON_TOO_DEEP: 400,
  ERR_REQUEST_TIMEOUT: 408,
  ERR_HEADERS_TOO_LARGE: 431,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_UNAUTHENTICATED: 401,
  ERR_RATE_LIMITED: 429,
  ERR_PERMISSION_DENIED: 403,
  ERR_NOT_FOUND: 404,
  ERR_KEY_NOT_FOUND: 404,
  ERR_KEY_EXISTS: 409,
  ERR_KEY_VERSION_NOT_FOUND: 400,
  ERR_KEY_VERSION_RETIRED: 400,
  ERR_KEY_DISABLED: 409,
  ERR_KEY_OPERATION_UNSUPPORTED: 400,
  ERR_KEY_DELETION_NOT_ALLOWED: 409,
  ERR_PLAINTEXT_TOO_LARGE: 400,
  ERR_CIPHERTEXT_INVALID: 400,
  ERR_SIGNATURE_INVALID: 400,
  ERR_SECRET_NOT_FOUND: 404,
  ERR_TOKEN_NOT_FOUND: 404,
  ERR_SECRET_VERSION_DELETED: 404,
  ERR_SECRET_VERSION_DESTROYED: 404,
  ERR_CAS_MISMATCH: 409,
  ERR_CONFLICT: 409,
  // A root-key rotation is refused while the previous one is still rewriting records.
  ERR_ROTATION_IN_PROGRESS: 409,
  ERR_POLICY_INVALID: 400,
  ERR_NOT_SUPPORTED: 400,
  ERR_CONFIG: 500,
  ERR_NOT_INITIALIZED: 503,
  ERR_ALREADY_INITIALIZED: 409,
  // Backup and restore are CLI commands; listed so every code has a status.
  ERR_BACKUP_INVALID: 400,
  ERR_STORE_NOT_EMPTY: 409,
  // Recovery shares are read by `keyhold seal migrate` (CLI) only.
  ERR_RECOVERY_SHARES: 400,
  ERR_SEALED: 503,
  ERR_HSM_MODULE: 503,
  ERR_HSM_TOKEN_NOT_FOUND: 503,
  ERR_HSM_PIN_INCORRECT: 503,
  ERR_HSM_PIN_LOCKED: 503,
  ERR_HSM_KEY_MISSING: 503,
  ERR_HSM_MECHANISM_UNSUPPORTED: 501,
  ERR_HSM_UNAVAILABLE: 503,
  ERR_UPSTREAM_UNAVAILABLE: 503,
  // The reviewer identity lacks what Kubernetes login needs: the configuration is refused.
  ERR_KUBERNETES_PERMISSIONS: 400,
  // kube-apiserver could not be asked (config write), or the pod watch is not live (pod-bound
  // login): both pass, and both say what to fix or wait for (see publicMessage).
  ERR_KUBERNETES_UNREACHABLE: 503,
  ERR_KUBERNETES_NOT_SYNCED: 503,
  // OIDC single sign-on (issue 12). The caller's fault: 4xx. The provider's: 502 (it answered
  // something keyhold must refuse), 503 (it could not be reached in time): never a 500.
  ERR_OIDC_NOT_CONFIGURED: 400,
  ERR_OIDC_CONFIG_INVALID: 400,
  // The provider's metadata is unusable with this configuration (issuer mismatch, no S256...): the
  // configuration is refused (400) at PUT, and a login with it is a 502 (the provider changed).
  ERR_OIDC_DISCOVERY_INVALID: 400,
  ERR_OIDC_REDIRECT_URI_INVALID: 400,
  // Unknown, expired, already used, or bound to another browser.
  ERR_OIDC_STATE_INVALID: 400,
  // The provider refused the authorization code (invalid_grant: unknown, used, expired, or issued to another redirect).
  ERR_OIDC_CODE_INVALID: 400,
  // The provider sent the browser back with an error (access_denied...) instead of a code.
  ERR_OIDC_LOGIN_DENIED: 401,
  ERR_OIDC_TOKEN_INVALID: 401,
  ERR_OIDC_GROUPS_UNMAPPED: 403,
  ERR_OIDC_PROVIDER_ERROR: 502,
  ERR_OIDC_PROVIDER_UNREACHABLE: 503,
  ERR_HSM: 502,
  ERR_STORAGE: 503,
  // The database is restarting, failing over or unreachable: transient, the client retries.
  ERR_STORAGE_UNAVAILABLE: 503,
  ERR_BARRIER_INTEGRITY: 500,
  ERR_AUDIT_UNAVAILABLE: 503,
  ERR_AUDIT_CHAIN_BROKEN: 503,
  // The audit page's verification of the PostgreSQL table ran past its bound (audit.verifyTimeoutSeconds):
  // the table is too large to judge within a request; `keyhold audit verify --config` has no bound.
  ERR_AUDIT_VERIFY_TIMEOUT: 503,
  ERR_INTERNAL: 500,
  // Quorum approval (issue 12, src/approvals/). Who may not do it: 403; the request is not in a
  // state that allows it (expired, already decided, already executed, the hash the approver saw
  // is not the request's): 409.
  ERR_APPROVAL_NOT_FOUND: 404,
  ERR_APPROVAL_POLICY_NOT_FOUND: 404,
  ERR_APPROVAL_POLICY_INVALID: 400,
  ERR_APPROVAL_NOT_PERSON: 403,
  ERR_APPROVAL_SELF: 403,
  ERR_APPROVAL_NOT_APPROVER: 403,
  ERR_APPROVAL_NOT_REQUESTER: 403,
  ERR_APPROVAL_ALREADY_DECIDED: 409,
  ERR_APPROVAL_PARAMS_MISMATCH: 409,
  ERR_APPROVAL_EXPIRED: 409,
  ERR_APPROVAL_STATE: 409,
  ERR_APPROVAL_EXECUTION_INVALID: 403,
  // Too many open requests (per person, or in all): frees when requests end, not with time, so no Retry-After.
  ERR_APPROVAL_LIMIT: 429,
  // Operator accounts and groups (issue 12). A wrong username, password, TOTP or recovery code is
  // one answer (ERR_LOGIN_FAILED), so a login does not tell which part was wrong or whether the
  // account exists; ERR_SECOND_FACTOR_INVALID is the re-authentication of a logged-in person.
  ERR_LOGIN_FAILED: 401,
  ERR_SECOND_FACTOR_INVALID: 401,
  ERR_ACCOUNT_LOCKED: 423,
  ERR_ADDRESS_LOCKED: 429,
  // Only after the password was right (and for an account not enrolled yet): reveals nothing to someone who does not know it.
  ERR_ENROLMENT_REQUIRED: 403,
  ERR_NO_POLICIES: 403,
  ERR_OPERATOR_EXISTS: 409,
  ERR_OPERATOR_NOT_FOUND: 404,
  ERR_GROUP_NOT_FOUND: 404,
  ERR_PASSWORD_POLICY: 400,
  // Password hashing is memory-hard and runs a few at a time; the queue behind it is bounded.
  ERR_LOGIN_BUSY: 503,
  // Web console sessions (issue 12, console).
  ERR_CSRF: 403,
};

/** Refusals that pass by themselves: the client is told when to retry (Retry-After, seconds). */
export const RETRY_AFTER_SECONDS: Readonly<Partial<Record<KeyholdErrorCode, number>>> = {
  ERR_STORAGE_UNAVAILABLE: 1,
  // Every HSM member is out; members reconnect every ≤ 0.5 s, so a retry soon is worth it.
  ERR_HSM_UNAVAILABLE: 1,
  ERR_LOGIN_BUSY: 1,
};

/**
 * Server-side faults get a fixed message: a PKCS#11 CKR_*, a SQLite error or a file path never
 * reaches a client verbatim (it is in the server log, under the same request id).
 */
export function publicMessage(code: KeyholdErrorCode, message: string): string {
  const status = HTTP_STATUS[code] ?? 500;
  if (status < 500 || code === 'ERR_HSM_MECHANISM_UNSUPPORTED') return message;
  // Written by keyhold (what it could not reach, which watch is not live), never a secret: the
  // caller needs it to know what to fix or to wait for.
  if (code === 'ERR_KUBERNETES_UNREACHABLE' || code === 'ERR_KUBERNETES_NOT_SYNCED') return message;
  // Written by keyhold (which provider endpoint failed, and how), never a secret or the provider's raw answer.
  if (code === 'ERR_OIDC_PROVIDER_ERROR' || code === 'ERR_OIDC_PROVIDER_UNREACHABLE') return message;
  // Written by keyhold (the bound, and the offline command to use instead).
  if (code === 'ERR_AUDIT_VERIFY_TIMEOUT') return message;
  if (code.startsWith('ERR_HSM')) return 'the HSM could not complete the operation';
  if (code.startsWith('ERR_AUDIT')) return 'the audit log cannot be written; request refused';
  if (code === 'ERR_STORAGE' || code === 'ERR_STORAGE_UNAVAILABLE') return 'storage is unavailable';
  if (code === 'ERR_SEALED' || code === 'ERR_NOT_INITIALIZED') return 'keyhold is sealed or not initialised';
  return 'internal error';
}
