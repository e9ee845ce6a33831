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
# The web console (ui/): type-checked on its own (DOM, Preact JSX), then one esbuild bundle into
# dist/ui, served by the server at /ui. Its gzipped size is printed and kept in dist/ui/size.json.
rm -rf dist/ui
npx tsc -p ui/tsconfig.json
mkdir -p dist/ui
npx esbuild ui/src/main.tsx --bundle --minify --format=esm --target=es2020 --jsx=automatic --jsx-import-source=preact \
  --legal-comments=none --log-level=warning --outfile=dist/ui/app.js
cp ui/index.html ui/app.css dist/ui/
js_bytes=$(wc -c < dist/ui/app.js)
js_gzip=$(gzip -9 -c dist/ui/app.js | wc -c)
css_gzip=$(gzip -9 -c dist/ui/app.css | wc -c)
printf '{ "js_bytes": %d, "js_gzip_bytes": %d, "css_gzip_bytes": %d }\n' "$js_bytes" "$js_gzip" "$css_gzip" > dist/ui/size.json
echo "web console: dist/ui/app.js ${js_bytes} bytes, ${js_gzip} gzipped (css ${css_gzip} gzipped)" >&2
