#!/usr/bin/env bash
# The whole test suite: the tap's unit and integration tests and the fake
# Gleap API's own tests, in one cargo invocation; then the end-to-end test
# (scripts/e2e.sh: the prebuilt wheel, installed where no Rust is on PATH,
# Meltano, real Singer targets from PyPI, pip and cargo install from source,
# the cron recipe). SKIP_E2E=1 skips the latter for a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
if [ "${SKIP_E2E:-}" = 1 ]; then
  echo "SKIP_E2E=1: end-to-end test skipped"
else
  ./scripts/e2e.sh
fi
