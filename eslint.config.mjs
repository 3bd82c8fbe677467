// @ts-check
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import boundaries from 'eslint-plugin-boundaries';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Each folder of src/ and the folders it may import; the files at the root of src/ may import any. */
const SRC_FOLDERS = {
  common: [],
  config: ['common'],
  auth: ['common', 'config'],
  logging: ['common', 'config'],
  metrics: ['common', 'config'],
  llm: ['common', 'config'],
  idempotency: ['common', 'config'],
  chats: ['common', 'config', 'auth', 'idempotency'],
  summaries: ['common', 'config', 'auth', 'chats', 'llm'],
  messages: ['common', 'config', 'auth', 'chats', 'idempotency', 'llm', 'metrics', 'summaries'],
  health: ['common', 'config', 'auth', 'chats', 'llm'],
  'rate-limit': ['common', 'config', 'auth'],
  playground: ['common', 'auth'],
  storage: ['common', 'config', 'chats', 'idempotency', 'summaries'],
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // The folders of src/ depend on each other one way only (docs/architecture.md draws the graph):
    // features own their ports, storage implements them and only the root module wires it.
    files: ['src/**/*.ts'],
    plugins: { boundaries, 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import/resolver': { typescript: true, node: true },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
      'boundaries/include': ['src/**/*.ts'],
      'boundaries/elements': Object.keys(SRC_FOLDERS).map((type) => ({ type, pattern: `src/${type}` })),
    },
    rules: {
      'import-x/no-cycle': 'error',
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          policies: Object.entries(SRC_FOLDERS).map(([type, allowed]) => ({
            from: { element: { type } },
            allow: { to: { element: { types: { anyOf: [type, ...allowed] } } } },
          })),
        },
      ],
    },
  },
  {
    // The playground page's script runs in browsers, as a module.
    files: ['src/playground/public/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' },
  },
  {
    // Measurement scripts run under plain Node and print their figures.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: globals.node },
    rules: { 'no-console': 'off' },
  },
);
