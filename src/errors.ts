/**
 * The one error type of keyhold. Every failure a caller can see carries a code from this closed
 * union; HTTP (api/error-status.ts) and the CLI map codes, never messages. Tests assert codes.
 */
export type KeyholdErrorCode =
  | 'ERR_BAD_REQUEST'
  | 'ERR_JSON_TOO_DEEP'
  | 'ERR_REQUEST_TIMEOUT'
  | 'ERR_HEADERS_TOO_LARGE'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_RATE_LIMITED'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_NOT_FOUND'
  | 'ERR_KEY_NOT_FOUND'
  | 'ERR_KEY_EXISTS'
  | 'ERR_KEY_VERSION_NOT_FOUND'
  | 'ERR_KEY_VERSION_RETIRED'
  | 'ERR_KEY_DISABLED'
  | 'ERR_KEY_OPERATION_UNSUPPORTED'
  | 'ERR_KEY_DELETION_NOT_ALLOWED'
  | 'ERR_PLAINTEXT_TOO_LARGE'
  | 'ERR_CIPHERTEXT_INVALID'
  | 'ERR_SIGNATURE_INVALID'
  | 'ERR_SECRET_NOT_FOUND'
  | 'ERR_TOKEN_NOT_FOUND'
  | 'ERR_SECRET_VERSION_DELETED'
  | 'ERR_SECRET_VERSION_DESTROYED'
  | 'ERR_CAS_MISMATCH'
  | 'ERR_CONFLICT'
  | 'ERR_ROTATION_IN_PROGRESS'
  | 'ERR_POLICY_INVALID'
  | 'ERR_NOT_SUPPORTED'
  | 'ERR_CONFIG'
  | 'ERR_NOT_INITIALIZED'
  | 'ERR_ALREADY_INITIALIZED'
  | 'ERR_BACKUP_INVALID'
  | 'ERR_STORE_NOT_EMPTY'
  | 'ERR_RECOVERY_SHARES'
  | 'ERR_SEALED'
  | 'ERR_HSM_MODULE'
  | 'ERR_HSM_TOKEN_NOT_FOUND'
  | 'ERR_HSM_PIN_INCORRECT'
  | 'ERR_HSM_PIN_LOCKED'
  | 'ERR_HSM_KEY_MISSING'
  | 'ERR_HSM_MECHANISM_UNSUPPORTED'
  | 'ERR_HSM_UNAVAILABLE'
  | 'ERR_UPSTREAM_UNAVAILABLE'
  | 'ERR_KUBERNETES_PERMISSIONS'
  | 'ERR_KUBERNETES_UNREACHABLE'
  | 'ERR_KUBERNETES_NOT_SYNCED'
  // OIDC single sign-on (issue 12, src/identity/oidc/).
  | 'ERR_OIDC_NOT_CONFIGURED'
  | 'ERR_OIDC_CONFIG_INVALID'
  | 'ERR_OIDC_DISCOVERY_INVALID'
  | 'ERR_OIDC_REDIRECT_URI_INVALID'
  | 'ERR_OIDC_STATE_INVALID'
  | 'ERR_OIDC_CODE_INVALID'
  | 'ERR_OIDC_LOGIN_DENIED'
  | 'ERR_OIDC_TOKEN_INVALID'
  | 'ERR_OIDC_GROUPS_UNMAPPED'
  | 'ERR_OIDC_PROVIDER_ERROR'
  | 'ERR_OIDC_PROVIDER_UNREACHABLE'
  | 'ERR_HSM'
  | 'ERR_STORAGE'
  | 'ERR_STORAGE_UNAVAILABLE'
  | 'ERR_BARRIER_INTEGRITY'
  | 'ERR_AUDIT_UNAVAILABLE'
  | 'ERR_AUDIT_CHAIN_BROKEN'
  | 'ERR_AUDIT_VERIFY_TIMEOUT'
  | 'ERR_INTERNAL'
  // Quorum approval (issue 12, src/approvals/).
  | 'ERR_APPROVAL_NOT_FOUND'
  | 'ERR_APPROVAL_POLICY_NOT_FOUND'
  | 'ERR_APPROVAL_POLICY_INVALID'
  | 'ERR_APPROVAL_NOT_PERSON'
  | 'ERR_APPROVAL_SELF'
  | 'ERR_APPROVAL_NOT_APPROVER'
  | 'ERR_APPROVAL_NOT_REQUESTER'
  | 'ERR_APPROVAL_ALREADY_DECIDED'
  | 'ERR_APPROVAL_PARAMS_MISMATCH'
  | 'ERR_APPROVAL_EXPIRED'
  | 'ERR_APPROVAL_STATE'
  | 'ERR_APPROVAL_EXECUTION_INVALID'
  | 'ERR_APPROVAL_LIMIT'
  // Operator accounts and groups (issue 12, src/operators/, src/groups/).
  | 'ERR_LOGIN_FAILED'
  | 'ERR_SECOND_FACTOR_INVALID'
  | 'ERR_ACCOUNT_LOCKED'
  | 'ERR_ADDRESS_LOCKED'
  | 'ERR_ENROLMENT_REQUIRED'
  | 'ERR_NO_POLICIES'
  | 'ERR_OPERATOR_EXISTS'
  | 'ERR_OPERATOR_NOT_FOUND'
  | 'ERR_GROUP_NOT_FOUND'
  | 'ERR_PASSWORD_POLICY'
  | 'ERR_LOGIN_BUSY'
  // Web console sessions (issue 12, console).
  | 'ERR_CSRF';

export class KeyholdError extends Error {
  override readonly name = 'KeyholdError';
  readonly code: KeyholdErrorCode;
  /** Safe, structured facts for the client (never secrets). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: KeyholdErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }
}

export function isKeyholdError(err: unknown, code?: KeyholdErrorCode): err is KeyholdError {
  return err instanceof KeyholdError && (code === undefined || err.code === code);
}
