#!/usr/bin/env bash
# The whole test suite: the tap's unit and integration tests and the fake
# Gleap API's own tests, in one cargo invocation; then the end-to-end test
# (scripts/e2e.sh: the prebuilt wheel, installed where no Rust is on PATH,
# Meltano, real Singer targets from PyPI, pip and cargo install from source,
# the cron recipe). SKIP_E2E=1 skips the latter for a quick local run.
#
# Whatever fails, every part runs, and the last line says what each did:
#   test.sh: cargo tests 240 passed, 0 failed; e2e 1057 passed, 0 failed
# Arguments go to `cargo test` (a test name filters the cargo tests).
set -uo pipefail
cd "$(dirname "$0")/.."
log=${CARGO_TARGET_DIR:-target}/test.log
mkdir -p "$(dirname "$log")"

# Every test binary, even after one fails (--no-fail-fast): a failure in
# one says nothing of the others.
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
cargo_rc=${PIPESTATUS[0]}
results=$(grep -E '^test result: ' "$log" || true)
if [ -z "$results" ]; then
  cargo_summary="cargo tests did not run (they did not build: see above)"
else
  sum() { sed -E "s/.* ([0-9]+) $1.*/\\1/" <<<"$results" | awk '{ n += $1 } END { print n + 0 }'; }
  passed=$(sum passed)
  failed=$(sum failed)
  cargo_summary="cargo tests $passed passed, $failed failed"
  # A binary that crashed before its result line counts as a failure.
  [ "$cargo_rc" != 0 ] && [ "$failed" = 0 ] && cargo_summary="$cargo_summary (but cargo test failed: see above)"
fi

e2e_rc=0
if [ "${SKIP_E2E:-}" = 1 ]; then
  e2e_summary="e2e not run (SKIP_E2E=1)"
else
  ./scripts/e2e.sh
  e2e_rc=$?
  # e2e.sh's last line: "e2e: N passed, N failed", once its checks ran.
  e2e_last=$(tail -n 1 .venv-e2e/e2e.log 2>/dev/null || true)
  if [[ "$e2e_last" =~ ^e2e:\ ([0-9]+\ passed,\ [0-9]+\ failed) ]] && [ -s .venv-e2e/e2e.log ] &&
    [ .venv-e2e/e2e.log -nt "$log" ]; then
    e2e_summary="e2e ${BASH_REMATCH[1]}"
  else
    e2e_summary="e2e failed before its checks ran (exit $e2e_rc: see above)"
  fi
fi

echo "test.sh: $cargo_summary; $e2e_summary"
[ "$cargo_rc" = 0 ] && [ "$e2e_rc" = 0 ]
