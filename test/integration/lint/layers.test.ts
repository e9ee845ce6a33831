/**
 * The import order of the layers is enforced by lint (eslint.config.js): a forbidden import, static
 * or dynamic, in a file of each layer is an error; the imports the layer may make are not. Linted
 * as text under a made-up file name in each directory, so nothing is written into src/.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

/** The repository, from this compiled file (dist/test/integration/lint/). */
const ROOT = resolve(fileURLToPath(import.meta.url), '../../../../..');
const eslint = new ESLint({ cwd: ROOT });

/** The layer rules' complaints about `code` as the file `file` (relative to the repository). */
async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: resolve(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax' || m.fatal).map((m) => `${m.ruleId}: ${m.message}`);
}

const staticImport = (from: string) => `import * as m from '${from}';\nexport const x = m;\n`;
const dynamicImport = (from: string) => `export const load = () => import('${from}');\n`;

// [file, import, allowed]
const CASES: Array<[string, string, boolean]> = [
  ['src/agent/zz.ts', '../client/client.js', true],
  // People (issue 12): groups sit below operator accounts; neither reaches up into the API.
  ['src/operators/zz.ts', '../groups/store.js', true],
  ['src/operators/zz.ts', '../api/route.js', false],
  ['src/groups/zz.ts', '../operators/store.js', false],
  ['src/audit/zz.ts', '../operators/store.js', false],
  // Quorum approval: a domain under the API; nothing below it reaches it, and it does not reach up.
  ['src/approvals/zz.ts', '../policy/evaluate.js', true],
  ['src/approvals/zz.ts', '../groups/store.js', true],
  ['src/approvals/zz.ts', '../api/route.js', false],
  ['src/approvals/zz.ts', '../core/runtime.js', false],
  ['src/approvals/zz.ts', '../operators/store.js', false],
  ['src/policy/zz.ts', '../approvals/service.js', false],
  ['src/api/zz.ts', '../approvals/service.js', true],
  ['src/agent/zz.ts', '../keys/types.js', false],
  ['src/agent/zz.ts', '../core/config.js', false],
  ['src/client/zz.ts', '../wire/key-description.js', true],
  ['src/client/zz.ts', '../api/schemas.js', false],
  ['src/kubernetes/webhook/zz.ts', '../../client/secret-ref.js', true],
  ['src/kubernetes/webhook/zz.ts', '../../hsm/types.js', false],
  ['src/kubernetes/webhook/zz.ts', '../kms-plugin/envelope.js', false],
  ['src/kubernetes/kms-plugin/zz.ts', '../../hsm/types.js', true],
  ['src/kubernetes/kms-plugin/zz.ts', '../../barrier/barrier.js', false],
  ['src/kubernetes/kms-plugin/zz.ts', '../../identity/tokens.js', false],
  ['src/kubernetes/operator/zz.ts', '../../hsm/endpoint-set.js', true],
  ['src/kubernetes/operator/zz.ts', '../../barrier/barrier.js', false],
  ['src/kubernetes/operator/zz.ts', '../../keys/types.js', false],
  ['src/kubernetes/operator/zz.ts', '../../api/errors.js', false],
  ['src/kubernetes/operator/zz.ts', '../webhook/mutate.js', false],
  ['src/keys/zz.ts', '../barrier/barrier.js', true],
  ['src/keys/zz.ts', '../api/errors.js', false],
  ['src/keys/zz.ts', '../core/runtime.js', false],
  ['src/secrets/zz.ts', '../cli/output.js', false],
  ['src/identity/kubernetes/zz.ts', '../../barrier/barrier.js', true],
  ['src/identity/kubernetes/zz.ts', '../tokens.js', true],
  ['src/identity/kubernetes/zz.ts', '../../api/context.js', false],
  ['src/identity/kubernetes/zz.ts', '../../policy/evaluate.js', false],
  ['src/policy/zz.ts', '../identity/tokens.js', true],
  ['src/policy/zz.ts', '../core/config.js', false],
  ['src/barrier/zz.ts', '../storage/types.js', true],
  ['src/barrier/zz.ts', '../keys/types.js', false],
  ['src/barrier/zz.ts', '../secrets/store.js', false],
  ['src/storage/zz.ts', '../errors.js', true],
  ['src/storage/zz.ts', '../barrier/barrier.js', false],
  ['src/storage/zz.ts', '../audit/entry.js', false],
  ['src/hsm/zz.ts', '../storage/types.js', false],
  ['src/crypto/zz.ts', '../hsm/types.js', false],
  ['src/wire/zz.ts', '../errors.js', true],
  ['src/wire/zz.ts', '../keys/types.js', false],
  ['src/errors.ts', './keys/types.js', false],
  ['src/audit/zz.ts', '../api/server.js', false],
];

describe('lint enforces the import order of the layers', () => {
  for (const [file, from, allowed] of CASES) {
    it(`${file} ${allowed ? 'may' : 'may not'} import ${from}`, async () => {
      for (const code of [staticImport(from), dynamicImport(from)]) {
        const errors = await layerErrors(file, code);
        if (allowed) assert.deepEqual(errors, [], code);
        else assert.equal(errors.length, 1, `${code}\n${errors.join('\n')}`);
      }
    });
  }
});
