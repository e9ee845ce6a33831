/** Wire shapes of the key routes (`/v1/keys/...`) other than the key description (key-description.ts). */
import { Type, type Static } from '@sinclair/typebox';
import { Base64, Closed } from './schema.js';

export const KeyList = Closed({ keys: Type.Array(Type.String()) });
export type KeyList = Static<typeof KeyList>;

/** `POST /v1/keys/:name/config`: every field optional, only those given change. */
export const KeyConfigBody = Closed({
  min_decryption_version: Type.Optional(Type.Integer({ minimum: 1 })), deletion_allowed: Type.Optional(Type.Boolean()), disabled: Type.Optional(Type.Boolean()),
});
export type KeyConfigBody = Static<typeof KeyConfigBody>;

export const EncryptBody = Closed({ plaintext: Base64('plaintext, base64'), context: Type.Optional(Base64('additional authenticated data, base64', 8192)) });
export type EncryptBody = Static<typeof EncryptBody>;
const Ciphertext = Type.String({ maxLength: 1_400_000, description: 'keyhold:<key>:v<version>:<base64>' });
export const DecryptBody = Closed({ ciphertext: Ciphertext, context: Type.Optional(Base64('the context given at encryption', 8192)) });
export type DecryptBody = Static<typeof DecryptBody>;
export const DataKeyBody = Closed({
  bits: Type.Optional(Type.Union([Type.Literal(128), Type.Literal(256)])),
  plaintext: Type.Optional(Type.Boolean({ description: 'false: return only the wrapped data key' })),
  context: Type.Optional(Base64('context, base64', 8192)),
});
export type DataKeyBody = Static<typeof DataKeyBody>;
export const SignBody = Closed({ input: Base64('data to sign, base64') });
export type SignBody = Static<typeof SignBody>;
export const VerifyBody = Closed({ input: Base64('signed data, base64'), signature: Type.String({ maxLength: 8192 }) });
export type VerifyBody = Static<typeof VerifyBody>;

/** Encrypt and rewrap. */
export const CipherResult = Closed({ ciphertext: Type.String(), version: Type.Integer() });
export type CipherResult = Static<typeof CipherResult>;
export const DecryptResult = Closed({ plaintext: Type.String(), version: Type.Integer() });
export type DecryptResult = Static<typeof DecryptResult>;
export const DataKeyResult = Closed({ ciphertext: Type.String(), version: Type.Integer(), plaintext: Type.Optional(Type.String()) });
export type DataKeyResult = Static<typeof DataKeyResult>;
export const SignResult = Closed({ signature: Type.String(), version: Type.Integer() });
export type SignResult = Static<typeof SignResult>;
export const VerifyResult = Closed({ valid: Type.Boolean(), version: Type.Integer() });
export type VerifyResult = Static<typeof VerifyResult>;
