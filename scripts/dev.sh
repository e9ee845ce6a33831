#!/usr/bin/env bash
# Sets up (idempotent) and runs `keyhold dev`: a SoftHSM token + SQLite under ./.keyhold (or --data-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/keyhold.cjs dev "$@"
