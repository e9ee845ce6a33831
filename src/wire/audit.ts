/** Wire shapes of the audit routes (`/v1/sys/audit/...`), which `keyhold audit verify` reads. */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

export const AuditPublicKey = Closed({ public_key_pem: Type.String(), fingerprint: Type.String(), chain: Type.Optional(Type.String()) });
export type AuditPublicKey = Static<typeof AuditPublicKey>;

/** A signed checkpoint as exported (the API, and the `--checkpoint` file of `keyhold audit verify`). */
export const AuditCheckpoint = Closed({
  chain: Type.String(), head_seq: Type.Integer(), head_hash: Type.String(), signed_at: Type.String(),
  key: Type.String(), signature: Type.String(), entry_seq: Type.Integer(), entry_hash: Type.String(),
});
export type AuditCheckpoint = Static<typeof AuditCheckpoint>;
