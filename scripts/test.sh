#!/usr/bin/env bash
# The whole test suite: set-up, lint, type-check (the build), then every test against a real
# SoftHSM2 token (each test makes its own token directory under a fresh temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# kube-apiserver and etcd for the Kubernetes tests (built once into a cache; minutes the first time).
# Assigned apart from `export`, which would swallow the build's exit status under set -e.
KEYHOLD_K8S_DIR="$(bash scripts/k8s-build.sh)"
export KEYHOLD_K8S_DIR
KEYHOLD_COSIGN_DIR="$(bash scripts/cosign-build.sh)"
export KEYHOLD_COSIGN_DIR
KEYHOLD_HELM_DIR="$(bash scripts/helm-build.sh)" # helm for the chart tests
export KEYHOLD_HELM_DIR
echo "test: lint" >&2
npx eslint .
export KEYHOLD_TEST_TMP="$(mktemp -d -t keyhold-test.XXXXXX)"
trap 'rm -rf "$KEYHOLD_TEST_TMP"' EXIT
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ $# -gt 0 ]; then mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$1"); fi
echo "test: ${#files[@]} files" >&2
# --test-force-exit: a file whose tests have all ended exits even if something it started still runs
# (a load loop left spinning after a failed wait once hung the whole run); --test-timeout fails a
# single test that hangs instead of the run hanging until CI's limit.
node --test --test-concurrency=2 --test-force-exit --test-timeout=900000 --test-reporter=spec "${files[@]}"
