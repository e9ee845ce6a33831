#!/usr/bin/env bash
# Benchmarks: ratios against ceilings measured in the same run. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/bench/hsm-dispatch.js
node dist/bench/run.js
# Assigned apart from export, which would hide a failed build from set -e.
KEYHOLD_K8S_DIR="${KEYHOLD_K8S_DIR:-$(bash scripts/k8s-build.sh)}"
export KEYHOLD_K8S_DIR
KEYHOLD_TEST_TMP="$(mktemp -d -t keyhold-bench.XXXXXX)"
export KEYHOLD_TEST_TMP
trap 'rm -rf "$KEYHOLD_TEST_TMP"' EXIT
KEYHOLD_COSIGN_DIR="${KEYHOLD_COSIGN_DIR:-$(bash scripts/cosign-build.sh)}"
export KEYHOLD_COSIGN_DIR
node dist/bench/kms.js
node dist/bench/webhook.js
node dist/bench/login-storm.js
# Operator logins (password + TOTP) against a bare scrypt + TOTP route (.bench-out/login.json).
node dist/bench/login.js
# Replicas: 1 on SQLite against 1 and 3 on one PostgreSQL (.bench-out/replicas.json).
node dist/bench/replicas.js
# The HSM fleet: direct SoftHSM against the p11-kit hop (1 and 3 members), and a member killed under load (.bench-out/fleet.json).
node dist/bench/fleet.js
