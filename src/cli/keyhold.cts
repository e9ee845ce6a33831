#!/usr/bin/env node
/**
 * The `keyhold` executable. `keyhold agent …` — the process that runs in every pod — goes straight to
 * the CommonJS build of src/agent/cli.ts (dist/agent-cjs, see tsconfig.agent.json): no commander, no
 * ESM loader, about 3 MB less RSS per pod. Every other command loads the ESM CLI (main.ts).
 */
if (process.argv[2] === 'agent') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS on purpose, see above
  const agent = require('../../agent-cjs/agent/cli.js') as { main(argv: string[]): Promise<number> };
  void agent.main(process.argv.slice(3)).then((code) => { process.exitCode = code; });
} else {
  void import('./main.js');
}
