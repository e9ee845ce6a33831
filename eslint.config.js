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
    files: ['src/client/**/*.ts', 'src/agent/**/*.ts', 'src/kubernetes/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/api/**', '**/keys/**', '**/secrets/**', '**/barrier/**', '**/storage/**', '**/identity/**', '**/policy/**', '**/audit/**', '**/core/**'] }],
    },
  },
);
