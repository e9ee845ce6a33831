import { Type, type TSchema } from '@sinclair/typebox';
import { KEY_NAME_PATTERN, KEY_TYPES, PROTECTIONS } from '../keys/types.js';
import { ErrorResponse } from '../wire/errors.js';

/**
 * Schema pieces that need server constants (name patterns, key types). Schemas that need none are
 * wire shapes and live in src/wire/, where the client library takes their types from.
 */
export { Base64, Closed, NoContent } from '../wire/schema.js';
export { ErrorResponse };

export const KeyName = Type.String({ pattern: KEY_NAME_PATTERN, description: 'key name' });
export const KeyTypeSchema = Type.Union(KEY_TYPES.map((t) => Type.Literal(t)));
export const ProtectionSchema = Type.Union(PROTECTIONS.map((p) => Type.Literal(p)));
export const VersionQuery = Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'version number' });

/** Error responses every authenticated route can give, for the OpenAPI document. */
export function withErrors<T extends Record<number, TSchema>>(ok: T) {
  return { ...ok, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 503: ErrorResponse };
}
