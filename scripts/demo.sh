#!/usr/bin/env bash
# A real sync, end to end, against the bundled fake Gleap API: builds both
# binaries, starts the fake on 127.0.0.1:8723 (where sample_config.json
# points), runs a full sync and then an incremental one from the saved state.
# Output goes to demo-output/. No Gleap account needed.
set -euo pipefail
cd "$(dirname "$0")/.."

out=demo-output
mkdir -p "$out"
echo "==> building tap-gleap and fake-gleap (scripts/build.sh: release, ~4.5 min on 2 cores the first time)"
./scripts/build.sh
bin=${CARGO_TARGET_DIR:-target}/release

ready="$out/fake-url"
rm -f "$ready"
"$bin/fake-gleap" --port 8723 --tickets 5000 --sessions 2000 --messages 8000 --ready-file "$ready" 2>"$out/fake-gleap.log" &
fake=$!
trap 'kill $fake 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$ready" ] && break
  if ! kill -0 "$fake" 2>/dev/null; then
    echo "fake-gleap did not start (is port 8723 taken?):" >&2
    cat "$out/fake-gleap.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "==> fake Gleap API at $(cat "$ready")"

summary() {
  grep -o '"type":"RECORD","stream":"[a-z_]*"' "$1" | sed 's/.*"stream":"\([a-z_]*\)"/\1/' | sort | uniq -c |
    awk '{printf "    %-30s %8d records\n", $2, $1}'
}

echo "==> full sync: tap-gleap --config sample_config.json > $out/singer.jsonl"
"$bin/tap-gleap" --config sample_config.json >"$out/singer.jsonl" 2>"$out/tap.log"
summary "$out/singer.jsonl"
# The last line is the final STATE: keep it for the next run.
tail -n 1 "$out/singer.jsonl" >"$out/state.json"

echo "==> incremental sync from $out/state.json > $out/singer-incremental.jsonl"
"$bin/tap-gleap" --config sample_config.json --state "$out/state.json" >"$out/singer-incremental.jsonl" 2>"$out/tap-incremental.log"
summary "$out/singer-incremental.jsonl"
echo "    (incremental streams: only the records at their bookmarks, as nothing changed between the runs; full-table streams (teams, surveys, message templates, team members, the help center, news, the engagement lists...) are read whole on every run; the per-parent streams (ticket activity logs, session activities and events) only with --select or a catalog naming them)"
tail -n 1 "$out/singer-incremental.jsonl" >"$out/state.json"

echo
echo "Singer messages: $out/singer.jsonl and $out/singer-incremental.jsonl"
echo "Final state:     $out/state.json"
echo "Logs:            $out/tap.log, $out/tap-incremental.log"
