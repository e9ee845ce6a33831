/** Wire shapes of the secret routes (`/v1/secrets/...`, `/v1/secret-metadata/...`, undelete, destroy). */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

// TypeBox drops constraints on a Record's key schema (it becomes patternProperties '^(.*)$'), so
// the field-name limits are stated as propertyNames, which Ajv enforces.
export const SecretData = Type.Record(Type.String(), Type.Unknown(), { maxProperties: 1024, propertyNames: { minLength: 1, maxLength: 256 } });
export type SecretData = Static<typeof SecretData>;

/** A folder listing. */
export const SecretList = Closed({ keys: Type.Array(Type.String()) });
export type SecretList = Static<typeof SecretList>;

// One closed object rather than anyOf: fast-json-stringify tries each branch of an anyOf with a
// validator on every response, which showed up as the largest cost of a secret read.
export const SecretOrList = Closed({
  data: Type.Optional(SecretData), version: Type.Optional(Type.Integer()), created_at: Type.Optional(Type.String()),
  keys: Type.Optional(Type.Array(Type.String())),
}, 'a secret version ({data, version, created_at}) or, with ?list=true, a folder listing ({keys})');
export type SecretOrList = Static<typeof SecretOrList>;
/** One version of a secret, as `GET /v1/secrets/<path>` answers it. */
export type SecretVersion = Required<Pick<SecretOrList, 'data' | 'version' | 'created_at'>>;

export const SecretPutBody = Closed({ data: SecretData, cas: Type.Optional(Type.Integer({ minimum: 0 })) });
export type SecretPutBody = Static<typeof SecretPutBody>;
export const SecretWritten = Closed({ version: Type.Integer(), created_at: Type.String() });
export type SecretWritten = Static<typeof SecretWritten>;

export const SecretVersionsBody = Closed({ versions: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 1000, uniqueItems: true }) });
export type SecretVersionsBody = Static<typeof SecretVersionsBody>;
/** The versions a delete, undelete or destroy acted on. */
export const SecretVersions = Closed({ versions: Type.Array(Type.Integer()) });
export type SecretVersions = Static<typeof SecretVersions>;

export const SecretMetadataBody = Closed({ max_versions: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })), cas_required: Type.Optional(Type.Boolean()) });
export type SecretMetadataBody = Static<typeof SecretMetadataBody>;
const VersionMeta = Closed({ created_at: Type.String(), deleted_at: Type.Optional(Type.String()), destroyed: Type.Boolean() });
export const SecretMetadata = Closed({
  current_version: Type.Integer(), oldest_version: Type.Integer(), max_versions: Type.Integer(), cas_required: Type.Boolean(),
  created_at: Type.String(), updated_at: Type.String(), versions: Type.Record(Type.String(), VersionMeta),
});
export type SecretMetadata = Static<typeof SecretMetadata>;
