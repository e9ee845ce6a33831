/**
 * Body fields that are credentials (a reviewer token, a registry password). An approval request
 * keeps the exact body to run it later, but approvers are shown such a field only as a keyed hash
 * (`{ "redacted": "hmac-sha256:…" }`), and params_sha256 is computed over that shown form: every
 * approver can recompute the hash from what they see, and the hash still binds the secret (the
 * keyed hash changes with it) without exposing a low-entropy password to offline guessing.
 */

/** A field path in a JSON body: object keys, `*` for every element of an array. */
type FieldPath = readonly string[];

const SECRET_FIELDS: Readonly<Record<string, readonly FieldPath[]>> = Object.freeze({
  'auth.kubernetes.configure': [['reviewer_jwt'], ['registry_credentials', '*', 'password']],
  'auth.oidc.configure': [['client_secret']],
  'sys.operators.create': [['password']],
  'sys.operators.reset': [['password']],
});

/** Keyed hash of a secret value (the server's, never a plain hash: see above). */
export type SecretMac = (value: string) => string;

export function hasSecretFields(operation: string): boolean {
  return Object.hasOwn(SECRET_FIELDS, operation);
}

function redactAt(value: unknown, path: FieldPath, mac: SecretMac): unknown {
  if (path.length === 0) return { redacted: mac(JSON.stringify(value)) };
  const [head, ...rest] = path as [string, ...string[]];
  if (head === '*') return Array.isArray(value) ? value.map((item: unknown) => redactAt(item, rest, mac)) : value;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, head)) return value;
  return { ...(value as Record<string, unknown>), [head]: redactAt((value as Record<string, unknown>)[head], rest, mac) };
}

/** The body as approvers see it (a copy; the original is not changed): credentials replaced by their keyed hash. */
export function shownBody(operation: string, body: unknown, mac: SecretMac): unknown {
  const fields = Object.hasOwn(SECRET_FIELDS, operation) ? SECRET_FIELDS[operation] as readonly FieldPath[] : [];
  let shown = body;
  for (const path of fields) shown = redactAt(shown, path, mac);
  return shown;
}
