import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (docs in /shared/design/architecture.md, summed up in docs/design-notes.md
 * "Layers"): each directory with the src/ directories it may import besides its own. An arrow only
 * points down the stack crypto → hsm → storage → barrier → keys/secrets → identity → policy → audit
 * → api → core → cli; client/ and everything run in or beside a pod (agent/, kubernetes/*) stand
 * apart and never reach into the server. errors.ts and wire/ are leaves anyone may import.
 * A directory not listed here is not checked.
 */
const LEAVES = ['errors', 'wire'];
const BELOW_DOMAINS = [...LEAVES, 'crypto', 'hsm', 'storage', 'barrier'];
const LAYERS = {
  errors: [],
  wire: ['errors'],
  crypto: ['errors'],
  hsm: [...LEAVES, 'crypto'],
  storage: [...LEAVES, 'crypto', 'hsm'],
  barrier: [...LEAVES, 'crypto', 'hsm', 'storage'],
  keys: [...BELOW_DOMAINS, 'secrets'],
  secrets: [...BELOW_DOMAINS, 'keys'],
  identity: [...BELOW_DOMAINS, 'keys', 'secrets'],
  policy: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity'],
  audit: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity', 'policy'],
  // People (issue 12): groups map persons to policies; operator accounts log in through them.
  groups: [...BELOW_DOMAINS, 'identity', 'policy'],
  operators: [...BELOW_DOMAINS, 'identity', 'policy', 'groups'],
  // Quorum approval: a domain over the policies (path patterns), identity (who is a person), groups (name rule) and the audit's canonical JSON.
  approvals: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity', 'policy', 'audit', 'groups'],
  // api → core (Runtime, config types) points up: the api clean-up of issue 10 removes it.
  // Replicas: leader election and the background jobs it runs (the domains' units).
  ha: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity', 'policy', 'audit'],
  api: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity', 'policy', 'audit', 'ha', 'core', 'groups', 'operators', 'approvals'],
  core: [...BELOW_DOMAINS, 'keys', 'secrets', 'identity', 'policy', 'audit', 'ha', 'api', 'groups', 'operators', 'approvals'],
  // Offline store tools, run by the CLI: they read the configuration (core/config) to open a store.
  backup: [...BELOW_DOMAINS, 'core'],
  client: [...LEAVES, 'crypto'],
  'kubernetes/kms-plugin': [...LEAVES, 'crypto', 'hsm', 'client'],
  'kubernetes/webhook': [...LEAVES, 'crypto', 'client'],
  // The HSM-discovery operator: the endpoint-set document and the list+watch loop (hsm/kube-watch.ts, on client-node) are in hsm/.
  'kubernetes/operator': [...LEAVES, 'crypto', 'hsm', 'client'],
  agent: ['client'],
};
const SRC_DIRS = ['agent', 'api', 'approvals', 'audit', 'backup', 'barrier', 'cli', 'client', 'core', 'crypto', 'errors', 'groups', 'ha', 'hsm', 'identity', 'keys', 'kubernetes', 'operators', 'policy', 'secrets', 'storage', 'wire'];

/** `files` blocks that refuse, static or dynamic, every import of a src/ directory `layer` may not use. */
function layerBlocks(layer, allowed) {
  const [top, sub] = layer.split('/');
  const banned = SRC_DIRS.filter((d) => d !== top && !allowed.includes(d));
  // kubernetes/webhook may not import kubernetes/kms-plugin and the other way round.
  const bannedSiblings = sub ? Object.keys(LAYERS).filter((l) => l.startsWith(`${top}/`) && l !== layer).map((l) => l.split('/')[1]) : [];
  const message = `${layer} may import only ${allowed.length ? allowed.join(', ') : 'nothing of src/'} (the layers in eslint.config.js)`;
  const blocks = [];
  // A file `extra` directories below the layer's own reaches src/ with one '../' per directory.
  for (let extra = 0; extra <= 3; extra++) {
    const depth = layer.split('/').length;
    const up = (n) => (n === 0 ? '\\./' : `(\\.\\./){${n}}`);
    const alternatives = layer === 'errors' ? ['\\./'] : [
      ...banned.map((d) => up(depth + extra) + (d === 'errors' ? 'errors\\.js$' : `${d}/`)),
      ...bannedSiblings.map((d) => `${up(depth + extra)}${top}/${d}/`),
      ...bannedSiblings.map((d) => `${up(extra + 1)}${d}/`),
    ];
    const regex = `^(${alternatives.join('|')})`;
    const files = layer === 'errors' ? ['src/errors.ts'] : [`src/${layer}/${'*/'.repeat(extra)}*.ts`];
    blocks.push({
      files,
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ regex, message }] }],
        'no-restricted-syntax': ['error', { selector: `ImportExpression > Literal[value=/${regex.replace(/\//g, '\\/')}/]`, message }],
      },
    });
    if (layer === 'errors') break;
  }
  return blocks;
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // Tests poke at raw JSON responses.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  // The agent, webhook and KMS plugin are separate trust boundaries: they must never reach into
  // server internals. The server's layers only import downwards.
  ...Object.entries(LAYERS).flatMap(([layer, allowed]) => layerBlocks(layer, allowed)),
  {
    // Wire shapes reach the client, agent, webhook and KMS plugin as types only: the schemas are the
    // server's, and the agent must not load TypeBox. (The layers above keep server internals out.)
    files: ['src/client/**/*.ts', 'src/agent/**/*.ts', 'src/kubernetes/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [
        { group: ['**/wire/**'], allowTypeImports: true, message: 'wire shapes are imported as types only (import type): the schemas are for the server' },
      ] }],
    },
  },
  {
    // An API area is a plugin given only the services it uses (docs/design-notes.md, "API plugins"): never the whole runtime.
    // (The typescript-eslint rule, so it does not replace the layer rule's options for these files.)
    files: ['src/api/routes/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ group: ['**/core/runtime', '**/core/runtime.js'], message: 'a route plugin gets its services as plugin options from server.ts, not the Runtime' }] }],
    },
  },
);
