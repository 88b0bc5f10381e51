#!/usr/bin/env bash
# The whole test suite: the tap's unit and integration tests and the fake
# Gleap API's own tests, in one cargo invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
