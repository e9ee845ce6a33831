import { Type, type TSchema } from '@sinclair/typebox';
import { KEY_NAME_PATTERN, KEY_TYPES, PROTECTIONS } from '../keys/types.js';

/** Shared schema pieces. Every object is closed (additionalProperties: false): unknown fields are a 400, not silently dropped. */
export const Closed = <T extends Parameters<typeof Type.Object>[0]>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });

/**
 * Base64 fields are checked strictly (and canonically) by crypto/encoding.ts when decoded, with a
 * 400 naming the field; a schema pattern would scan every byte a second time.
 */
export const Base64 = (description: string, maxLength = 1_400_000) =>
  Type.String({ maxLength, contentEncoding: 'base64', description });

export const KeyName = Type.String({ pattern: KEY_NAME_PATTERN, description: 'key name' });
export const KeyTypeSchema = Type.Union(KEY_TYPES.map((t) => Type.Literal(t)));
export const ProtectionSchema = Type.Union(PROTECTIONS.map((p) => Type.Literal(p)));
export const VersionQuery = Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'version number' });

export const ErrorResponse = Closed({
  error: Closed({ code: Type.String(), message: Type.String() }),
  request_id: Type.String(),
});

/** Error responses every authenticated route can give, for the OpenAPI document. */
export function withErrors(ok: Record<number, TSchema>): Record<number, TSchema> {
  return { ...ok, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 503: ErrorResponse };
}
