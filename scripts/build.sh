#!/usr/bin/env bash
# Compiles keyhold: the ESM build of everything (dist/), then the CommonJS build of the in-pod agent
# (dist/agent-cjs/, see tsconfig.agent.json) that the `keyhold` launcher uses for `keyhold agent`.
set -euo pipefail
cd "$(dirname "$0")/.."
# From scratch: a compiled test whose source was moved or deleted would otherwise still run.
rm -rf dist/src dist/test dist/bench
npx tsc -p tsconfig.json
rm -rf dist/agent-cjs
npx tsc -p tsconfig.agent.json
# Inside a "type": "module" package, Node would read these .js files as ESM without this marker.
printf '{ "type": "commonjs" }\n' > dist/agent-cjs/package.json
chmod +x dist/src/cli/keyhold.cjs
