/**
 * Validation of policy documents supplied by operators (API body, CLI file). Everything that reaches
 * evaluate.ts should have passed through here, so evaluation can stay simple and fast.
 */
import { KeyholdError } from '../errors.js';
import { ROOT_POLICY_NAME } from './evaluate.js';
import { CAPABILITIES, type Capability, type Policy, type PolicyRule } from './types.js';

export const POLICY_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const MAX_POLICY_RULES = 256;
export const MAX_POLICY_PATH_LENGTH = 512;

const PATH_CHARS = /^[A-Za-z0-9._/+*{}-]+$/;
/** Identity placeholders a rule path may use as a whole segment, filled from the token's selectors. */
export const PATH_VARIABLES = ['k8s.namespace', 'k8s.service_account', 'k8s.pod_name'] as const;
const VARIABLE_SEGMENT = /^\{\{([a-z0-9._]+)\}\}$/;
const CAPABILITY_SET: ReadonlySet<string> = new Set(CAPABILITIES);

function invalid(message: string): KeyholdError {
  return new KeyholdError('ERR_POLICY_INVALID', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function rejectUnknownKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw invalid(`${where}: unknown field ${JSON.stringify(key)} (allowed: ${allowed.join(', ')})`);
  }
}

/** Returns what is wrong with a rule path, or undefined when it is acceptable. */
function pathProblem(path: string): string | undefined {
  if (path.length === 0) return 'must not be empty';
  if (path.length > MAX_POLICY_PATH_LENGTH) return `must be at most ${MAX_POLICY_PATH_LENGTH} characters`;
  if (!PATH_CHARS.test(path)) return 'may only contain letters, digits and . _ / + * -';
  const star = path.indexOf('*');
  if (star !== -1 && star !== path.length - 1) return "'*' is only allowed as the last character";
  for (const segment of path.split('/')) {
    if (segment === '') return "must not have empty segments (leading, trailing or doubled '/')";
    // '.' and '..' would let a rule name a path that some layer later normalises elsewhere.
    if (segment === '..' || segment === '.') return "must not contain '.' or '..' segments";
    if (segment.includes('+') && segment !== '+') return "'+' must be a whole segment";
    if (segment.includes('{') || segment.includes('}')) {
      const variable = VARIABLE_SEGMENT.exec(segment)?.[1];
      if (!variable || !(PATH_VARIABLES as readonly string[]).includes(variable)) return `placeholders must be a whole segment, one of ${PATH_VARIABLES.map((v) => `{{${v}}}`).join(', ')}`;
    }
  }
  return undefined;
}

function parseCapabilities(value: unknown, where: string): Capability[] {
  if (!Array.isArray(value)) throw invalid(`${where}: must be an array of capabilities`);
  if (value.length === 0) throw invalid(`${where}: must list at least one capability`);
  const seen = new Set<string>();
  for (const [i, cap] of value.entries()) {
    if (typeof cap !== 'string' || !CAPABILITY_SET.has(cap)) {
      throw invalid(`${where}[${i}]: unknown capability ${JSON.stringify(cap)} (known: ${CAPABILITIES.join(', ')})`);
    }
    if (seen.has(cap)) throw invalid(`${where}[${i}]: duplicate capability "${cap}"`);
    seen.add(cap);
  }
  return [...value] as Capability[];
}

function parseRule(value: unknown, where: string): PolicyRule {
  if (!isPlainObject(value)) throw invalid(`${where}: must be an object with "path" and "capabilities"`);
  rejectUnknownKeys(value, ['path', 'capabilities'], where);
  const path = value['path'];
  if (typeof path !== 'string') throw invalid(`${where}.path: must be a string`);
  const problem = pathProblem(path);
  if (problem !== undefined) {
    const shown = path.length > 80 ? `${path.slice(0, 80)}...` : path; // keep messages readable
    throw invalid(`${where}.path ${JSON.stringify(shown)}: ${problem}`);
  }
  return { path, capabilities: parseCapabilities(value['capabilities'], `${where}.capabilities`) };
}

/**
 * Validates a policy document `{ rules: [{ path, capabilities }] }` and returns a fresh copy (never
 * aliasing the input). A `name` field is tolerated only if it equals `name`, so stored policies
 * round-trip. Throws KeyholdError('ERR_POLICY_INVALID') describing the first problem found.
 */
export function parsePolicy(name: string, input: unknown): Policy {
  if (typeof name !== 'string' || !POLICY_NAME_PATTERN.test(name)) {
    throw invalid(`policy name ${JSON.stringify(name)}: must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`);
  }
  // 'root' is granted everything by evaluate.ts; letting a document claim it would be an escalation.
  if (name === ROOT_POLICY_NAME) throw invalid(`policy name "${ROOT_POLICY_NAME}" is reserved`);
  const where = `policy "${name}"`;
  if (!isPlainObject(input)) throw invalid(`${where}: must be an object with a "rules" array`);
  rejectUnknownKeys(input, ['rules', 'name'], where);
  if ('name' in input && input['name'] !== name) {
    throw invalid(`${where}: field "name" (${JSON.stringify(input['name'])}) does not match the policy name`);
  }
  const rules = input['rules'];
  if (!Array.isArray(rules)) throw invalid(`${where}.rules: must be an array`);
  if (rules.length > MAX_POLICY_RULES) throw invalid(`${where}.rules: at most ${MAX_POLICY_RULES} rules allowed, got ${rules.length}`);
  return { name, rules: rules.map((rule, i) => parseRule(rule, `${where}.rules[${i}]`)) };
}
