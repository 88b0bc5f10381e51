#!/usr/bin/env bash
# The cargo test suite under load: COPIES copies of every test binary run at
# once (default: twice as many as this machine has cores, each copy running
# its tests on as many threads as there are cores), ROUNDS times over. A
# test that passes alone and fails here reads one scheduling as a promise,
# or the tap breaks a promise when things are slow: both are defects.
# Prints every failure by name, then one summary line; exits 1 on any.
#
#   ./scripts/stress.sh                       # 2 x cores copies, 3 rounds
#   COPIES=6 ROUNDS=5 ./scripts/stress.sh     # harder
#   ./scripts/stress.sh evolution::           # only tests whose name matches
#   E2E=1 ./scripts/stress.sh                 # also scripts/e2e.sh, once, in
#                                             # the first round beside the copies
#
# Builds with the same profile as scripts/test.sh (nothing extra); logs
# stay in target/stress/.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc 2>/dev/null || echo 2)
copies=${COPIES:-$((2 * cores))}
rounds=${ROUNDS:-3}
filter=("$@")
logs=${CARGO_TARGET_DIR:-target}/stress
rm -rf "$logs"
mkdir -p "$logs"

# The test binaries, as `cargo test` would run them, each with the
# directory it runs in (its package's).
echo "==> stress: building the test binaries"
cargo test --workspace --locked --no-run --message-format=json 2>"$logs/build.log" |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' >"$logs/binaries.tsv" || { cat "$logs/build.log" >&2; exit 1; }
echo "    $(wc -l <"$logs/binaries.tsv") test binaries; $copies copies x $rounds rounds on $cores cores"

# One copy: every binary in turn, its output in one log.
copy() {
  local log=$1
  while IFS=$'\t' read -r dir bin; do
    (cd "$dir" && "$bin" "${filter[@]}") >>"$log" 2>&1 || true
  done <"$logs/binaries.tsv"
}

tests=0
failures=0
e2e_result="not run (E2E=1 runs it)"
declare -A failed_names=()
for round in $(seq 1 "$rounds"); do
  start=$SECONDS
  pids=()
  for c in $(seq 1 "$copies"); do
    copy "$logs/round$round-copy$c.log" &
    pids+=($!)
  done
  e2e_pid=
  if [ "${E2E:-}" = 1 ] && [ "$round" = 1 ]; then
    ./scripts/e2e.sh >"$logs/e2e.log" 2>&1 &
    e2e_pid=$!
  fi
  for p in "${pids[@]}"; do wait "$p"; done
  if [ -n "$e2e_pid" ]; then
    if wait "$e2e_pid"; then e2e_result="passed"; else e2e_result="FAILED"; fi
    e2e_result="$e2e_result ($(tail -n 1 "$logs/e2e.log"); log $logs/e2e.log)"
  fi
  ran=$(cat "$logs"/round"$round"-copy*.log | grep -cE '^test .* \.\.\. (ok|FAILED)$' || true)
  bad=$(cat "$logs"/round"$round"-copy*.log | grep -E '^test .* \.\.\. FAILED$' | sed 's/^test \(.*\) \.\.\. FAILED$/\1/' || true)
  # A binary that crashed prints no result line for the tests it did not finish.
  crashed=$(grep -l 'error: test failed\|process didn.t exit successfully\|SIGSEGV\|signal: ' "$logs"/round"$round"-copy*.log 2>/dev/null |
    xargs -r grep -L 'test result' || true)
  nbad=0
  if [ -n "$bad" ]; then
    nbad=$(printf '%s\n' "$bad" | wc -l)
    while read -r name; do failed_names[$name]=$((${failed_names[$name]:-0} + 1)); done <<<"$bad"
  fi
  [ -n "$crashed" ] && nbad=$((nbad + 1)) && failed_names["(a test binary ended without its result: $crashed)"]=1
  tests=$((tests + ran))
  failures=$((failures + nbad))
  echo "    round $round: $ran tests run, $nbad failed ($((SECONDS - start)) s)"
done

for name in "${!failed_names[@]}"; do
  echo "FAILED ${failed_names[$name]}x: $name (logs: $logs/)"
done
[ "${E2E:-}" = 1 ] && echo "e2e under load: $e2e_result"
echo "stress: $copies copies x $rounds rounds on $cores cores: $tests tests run, $failures failed"
[ "$failures" = 0 ] && [[ "$e2e_result" != FAILED* ]]
