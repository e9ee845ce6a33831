#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * (The shebang's flag: V8's young generation may grow to 2 x 16 MiB by default, and start-up —
 * compiling every route's schemas — fills it, so an idle server held ~32 MiB of empty young space:
 * 123-127 MB of RSS against the 120 MB target. 8 MiB semi-spaces hold it at ~111 MB; the cost in
 * throughput, more frequent scavenges, shows in bench/run.ts, which runs this executable as the Helm
 * chart does. `node keyhold.cjs` runs without it.)
 *
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
