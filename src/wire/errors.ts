import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

/** Every refusal: `{ error: { code, message }, request_id }`. */
export const ErrorResponse = Closed({
  error: Closed({ code: Type.String(), message: Type.String() }),
  request_id: Type.String(),
});
export type ErrorResponse = Static<typeof ErrorResponse>;
