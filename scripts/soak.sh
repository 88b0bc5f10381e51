#!/usr/bin/env bash
# A longer soak of the reliability machinery: minutes of syncs against the
# fake Gleap API with high fault rates and random rate limits, each sync
# killed (kill -9) at random points and resumed from the last STATE it
# printed, data changing between runs. Prints a table; fails if a single
# record is lost.
#
#   ./scripts/soak.sh                 # 3 minutes
#   SOAK_SECONDS=900 SOAK_SEED=7 SOAK_FAULT_RATE=40 SOAK_KILLS=20 ./scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECONDS="${SOAK_SECONDS:-180}"
export SOAK_SEED="${SOAK_SEED:-$RANDOM}"
export SOAK_FAULT_RATE="${SOAK_FAULT_RATE:-30}"
export SOAK_KILLS="${SOAK_KILLS:-12}"
echo "soak: ${SOAK_SECONDS}s, seed ${SOAK_SEED}, fault rate ${SOAK_FAULT_RATE}%, ${SOAK_KILLS} kills per round" >&2
exec cargo test --release --test tests -- --ignored --nocapture --exact reliability::soak
