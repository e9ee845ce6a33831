#!/usr/bin/env bash
# Benchmarks: ratios against ceilings measured in the same run. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/bench/hsm-dispatch.js
node dist/bench/run.js
