import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    // The agent, webhook and KMS plugin are separate trust boundaries: they must never reach into server internals.
    // Wire shapes they take as types only: the schemas are the server's, and the agent must not load TypeBox.
    files: ['src/client/**/*.ts', 'src/agent/**/*.ts', 'src/kubernetes/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [
        { group: ['**/api/**', '**/keys/**', '**/secrets/**', '**/barrier/**', '**/storage/**', '**/identity/**', '**/policy/**', '**/audit/**', '**/core/**'], message: 'server internals are out of reach of the client, agent, webhook and KMS plugin' },
        { group: ['**/wire/**'], allowTypeImports: true, message: 'wire shapes are imported as types only (import type): the schemas are for the server' },
      ] }],
    },
  },
  {
    // src/wire is shared by the server and the client: it depends on TypeBox and on itself, nothing else of keyhold.
    files: ['src/wire/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['../**'], message: 'src/wire imports only TypeBox and src/wire' }] }],
    },
  },
  {
    // An API area is a plugin given only the services it uses (docs/design-notes.md, "API plugins"): never the whole runtime.
    files: ['src/api/routes/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/core/runtime', '**/core/runtime.js'], message: 'a route plugin gets its services as plugin options from server.ts, not the Runtime' }] }],
    },
  },
);
