/** Wire shapes of the policy routes (`/v1/policies/...`). */
import { Type, type Static } from '@sinclair/typebox';
import { Closed } from './schema.js';

const Capabilities = Type.Array(Type.String({ maxLength: 16 }), { minItems: 1, maxItems: 16 });
export const PolicyRule = Closed({ path: Type.String({ minLength: 1, maxLength: 512 }), capabilities: Capabilities });
export type PolicyRule = Static<typeof PolicyRule>;
export const PolicyBody = Closed({ rules: Type.Array(PolicyRule, { maxItems: 256 }) });
export type PolicyBody = Static<typeof PolicyBody>;
export const PolicyView = Closed({ name: Type.String(), rules: Type.Array(PolicyRule) });
export type PolicyView = Static<typeof PolicyView>;
export const PolicyList = Closed({ policies: Type.Array(Type.String()) });
export type PolicyList = Static<typeof PolicyList>;
