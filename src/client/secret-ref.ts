/**
 * Secret references (the agent renders them, the webhook checks them): `<path>` (the whole secret as JSON) or `<path>#<field>`
 * (one field, as text). In env mode a value `keyhold:<path>#<field>` is a reference.
 */
export interface SecretRef {
  path: string;
  field?: string;
}

const PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const FIELD = /^[A-Za-z0-9._-]{1,128}$/;

export function parseSecretRef(text: string): SecretRef {
  const hash = text.indexOf('#');
  const path = hash < 0 ? text : text.slice(0, hash);
  const field = hash < 0 ? undefined : text.slice(hash + 1);
  if (!PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..')) throw new Error(`invalid secret path ${JSON.stringify(path)}`);
  if (field !== undefined && !FIELD.test(field)) throw new Error(`invalid field ${JSON.stringify(field)}`);
  return field === undefined ? { path } : { path, field };
}

export const ENV_REFERENCE_PREFIX = 'keyhold:';

/** The reference in an environment value, or undefined when the value is an ordinary one. */
export function envReference(value: string): SecretRef | undefined {
  if (!value.startsWith(ENV_REFERENCE_PREFIX)) return undefined;
  const ref = parseSecretRef(value.slice(ENV_REFERENCE_PREFIX.length));
  if (ref.field === undefined) throw new Error(`environment reference ${JSON.stringify(value)} needs a #field`);
  return ref;
}

/** The text a reference renders to: one field as text, or the whole secret as JSON. */
export function renderSecret(data: Record<string, unknown>, ref: SecretRef): string {
  if (ref.field === undefined) return JSON.stringify(data);
  if (!(ref.field in data)) throw new Error(`secret ${ref.path} has no field ${ref.field}`);
  const value = data[ref.field];
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `{{ <path>#<field> }}` placeholders of a file template. */
const TEMPLATE_PLACEHOLDER = /\{\{\s*([^{}\s]+)\s*\}\}/g;

/** The secret references a template uses (each must name a field). */
export function templateRefs(template: string): SecretRef[] {
  // A `{{` or `}}` left over once the placeholders are taken out is a typo (`{{ app/db#pw }`), not text
  // to copy: rendering it literally would ship a broken config file without a word.
  const stray = /\{\{|\}\}/.exec(template.replace(TEMPLATE_PLACEHOLDER, ''));
  if (stray) throw new Error(`template has a malformed placeholder (stray "${stray[0]}"): write {{ <path>#<field> }}`);
  const refs: SecretRef[] = [];
  for (const match of template.matchAll(TEMPLATE_PLACEHOLDER)) {
    const ref = parseSecretRef(match[1] as string);
    if (ref.field === undefined) throw new Error(`template placeholder {{ ${match[1]} }} needs a #field`);
    refs.push(ref);
  }
  return refs;
}

/** Fills a template from secrets already read (path → data). */
export function renderTemplate(template: string, secrets: ReadonlyMap<string, Record<string, unknown>>): string {
  return template.replace(TEMPLATE_PLACEHOLDER, (_m, text: string) => {
    const ref = parseSecretRef(text);
    const data = secrets.get(ref.path);
    if (!data) throw new Error(`template: secret ${ref.path} was not read`);
    return renderSecret(data, ref);
  });
}
