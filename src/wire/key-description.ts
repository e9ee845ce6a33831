import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/**
 * The JSON the API answers for a key (`GET /v1/keys/:name`, create, rotate, config): one schema
 * for the server that validates and serialises it, and its `Static` type for the server code that
 * builds it (keys/describe.ts) and the client library that reads it.
 */
export const KeyDescription = Closed({
  name: Type.String(), type: Type.String(), protection: Type.String(), created_at: Type.String(),
  latest_version: Type.Integer(), min_decryption_version: Type.Integer(), deletion_allowed: Type.Boolean(), disabled: Type.Boolean(),
  versions: Type.Array(Closed({ version: Type.Integer(), created_at: Type.String(), public_key: Type.Optional(Type.String()) })),
});
export type KeyDescription = Static<typeof KeyDescription>;
