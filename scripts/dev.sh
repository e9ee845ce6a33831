#!/usr/bin/env bash
# Sets up (idempotent) and runs `keyhold dev`: a SoftHSM token + SQLite under ./.keyhold (or --data-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The launcher itself, not `node launcher`: its shebang sets the V8 flags the server runs with.
exec dist/src/cli/keyhold.cjs dev "$@"
