/**
 * The building blocks of the wire schemas. This folder holds the API's wire shapes: TypeBox
 * schemas, and their TypeScript types as `Static<>` of those schemas, so the two cannot drift.
 * It imports nothing but TypeBox and itself: the server validates and serialises with these
 * schemas, and the client library (agent, webhook, KMS plugin) imports their types only
 * (`import type`, erased at compile time), so it neither loads TypeBox nor reaches the server.
 */
import { Type } from '@sinclair/typebox';

/** Every object is closed (additionalProperties: false): unknown fields are a 400, not silently dropped. */
export const Closed = <T extends Parameters<typeof Type.Object>[0]>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });

/**
 * Base64 fields are checked strictly (and canonically) by crypto/encoding.ts when decoded, with a
 * 400 naming the field; a schema pattern would scan every byte a second time.
 */
export const Base64 = (description: string, maxLength = 1_400_000) =>
  Type.String({ maxLength, contentEncoding: 'base64', description });

/**
 * A 204's response schema: `{ type: 'null' }` in the OpenAPI document, as before, but typed as no
 * payload, so that `reply.code(204).send()` (which sends no body and no content-type) type-checks.
 */
export const NoContent = Type.Unsafe<undefined>(Type.Null());
