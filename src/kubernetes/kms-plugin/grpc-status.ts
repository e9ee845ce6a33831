/** The one map from keyhold error codes to gRPC status codes (api/error-status.ts is its HTTP twin). */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { KeyholdError, type KeyholdErrorCode } from '../../errors.js';

const TABLE: Partial<Record<KeyholdErrorCode, GrpcStatus>> = {
  ERR_BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  ERR_PLAINTEXT_TOO_LARGE: GrpcStatus.INVALID_ARGUMENT,
  ERR_CIPHERTEXT_INVALID: GrpcStatus.INVALID_ARGUMENT,
  ERR_KEY_VERSION_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_KEY_VERSION_RETIRED: GrpcStatus.FAILED_PRECONDITION,
  ERR_KEY_DISABLED: GrpcStatus.FAILED_PRECONDITION,
  ERR_PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  ERR_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  ERR_HSM_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  ERR_UPSTREAM_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  ERR_HSM_MODULE: GrpcStatus.UNAVAILABLE,
  ERR_HSM_TOKEN_NOT_FOUND: GrpcStatus.UNAVAILABLE,
  ERR_HSM_PIN_INCORRECT: GrpcStatus.UNAVAILABLE,
  ERR_HSM_PIN_LOCKED: GrpcStatus.UNAVAILABLE,
  ERR_HSM_KEY_MISSING: GrpcStatus.UNAVAILABLE,
  ERR_HSM: GrpcStatus.UNAVAILABLE,
  ERR_CONFIG: GrpcStatus.FAILED_PRECONDITION,
};

export interface GrpcFailure {
  code: GrpcStatus;
  details: string;
  /** For metrics labels: the keyhold code, or ERR_INTERNAL. */
  keyholdCode: string;
}

/** Unknown errors become INTERNAL with a generic message: their text may say more than a client should see. */
export function grpcFailure(err: unknown): GrpcFailure {
  if (err instanceof KeyholdError) {
    return { code: TABLE[err.code] ?? GrpcStatus.INTERNAL, details: `${err.code}: ${err.message}`, keyholdCode: err.code };
  }
  return { code: GrpcStatus.INTERNAL, details: 'ERR_INTERNAL: internal error (see the plugin log)', keyholdCode: 'ERR_INTERNAL' };
}
