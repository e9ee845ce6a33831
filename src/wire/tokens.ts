/** Wire shapes of the token routes (`/v1/tokens/...`). The token itself and its id hash are shown only to its holder. */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

export const TokenCreated = Closed({
  token: Type.String(), id: Type.String(), accessor: Type.String(), policies: Type.Array(Type.String()),
  expires_at: Type.String({ description: 'after clamping to the server maximum and to the parent\'s expiry' }),
});
export type TokenCreated = Static<typeof TokenCreated>;

/** `GET /v1/tokens/self`. */
export const TokenSelfView = Closed({
  id: Type.String(), accessor: Type.Optional(Type.String()), policies: Type.Array(Type.String()), created_at: Type.String(),
  expires_at: Type.Optional(Type.String()), display_name: Type.Optional(Type.String()),
});
export type TokenSelfView = Static<typeof TokenSelfView>;

export const AccessorList = Closed({ accessors: Type.Array(Type.String()) });
export type AccessorList = Static<typeof AccessorList>;

/** What anyone with `read` on the accessor may see: never the token nor its id hash. */
export const AccessorView = Closed({
  accessor: Type.String(), policies: Type.Array(Type.String()), created_at: Type.String(), expires_at: Type.Optional(Type.String()),
  display_name: Type.Optional(Type.String()), parent_accessor: Type.Optional(Type.String()), orphan: Type.Boolean(),
  selectors: Type.Optional(Type.Array(Type.String())),
});
export type AccessorView = Static<typeof AccessorView>;
