#!/usr/bin/env bash
# The release build of the project's binaries, tap-gleap and fake-gleap, in
# one cargo command. demo.sh, e2e.sh and bench.sh all build through here,
# so the dependencies the two share (tokio, hyper, serde, clap...) are
# compiled once, with one set of features, and target/release holds one
# copy of them. Building the two separately (`-p tap-gleap`, then
# `-p fake-gleap`), or with another selection of packages, compiles those
# dependencies again with other features.
#
#   ./scripts/build.sh       # ~4.5 min on 2 cores the first time; then a second
#
# The binaries: target/release/tap-gleap and target/release/fake-gleap (or
# under $CARGO_TARGET_DIR). Not quiet: the first build shows cargo's
# progress. (The prebuilt wheel, scripts/wheel.sh, is a compile of its own:
# zig links it, for glibc 2.17.)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo build --release --locked --workspace
