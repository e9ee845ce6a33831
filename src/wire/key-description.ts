/**
 * The JSON the API answers for a key (`GET /v1/keys/:name`, create, rotate, config): one
 * definition for the server that builds it and the client library that reads it. This folder holds
 * wire shapes only, no code, so either side can import it without depending on the other.
 */
export interface KeyDescription {
  name: string;
  type: string;
  protection: string;
  created_at: string;
  latest_version: number;
  min_decryption_version: number;
  deletion_allowed: boolean;
  disabled: boolean;
  versions: Array<{ version: number; created_at: string; public_key?: string }>;
}
