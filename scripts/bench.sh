#!/usr/bin/env bash
# Throughput, CPU and memory of a full sync against the bundled fake Gleap
# API, beside the ceiling (the same requests fetched and thrown away), and
# the rate-limit behaviour. See "Performance" in the README.
#
#   scripts/bench.sh                      # 10k, 100k and 1M tickets, 3 runs each, then the rate-limit check
#   SIZES="100000" RUNS=5 scripts/bench.sh
#   GZIP=1 scripts/bench.sh               # the fake gzips its answers (as the real API does)
#   RATE_SECONDS=0 scripts/bench.sh       # skip the rate-limit check
#   LATENCY_SIZES=0 scripts/bench.sh      # skip the latency rows
#   SHAPES=0 scripts/bench.sh             # skip the data-shape rows
#   FAKE_ARGS=--no-undocumented-fields scripts/bench.sh   # records hold only fields the schemas name
#   TAP=/path/to/tap-gleap scripts/bench.sh   # time another build of the tap (e.g. an older commit's)
#   BATCH=1 SIZES=0 RATE_SECONDS=0 LATENCY_SIZES=0 SHAPES=0 scripts/bench.sh   # the BATCH rows alone
#
# Each size: the fake starts with N tickets, N/10 sessions, N/10 messages and
# 10 surveys of N/1000 responses each; one untimed run (into a counter)
# gives the records, the Singer bytes and the exact requests made; then RUNS
# timed runs of the tap into /dev/null and RUNS of the fetch-only ceiling,
# replaying those requests with the same page size and keep-alive. Figures
# are medians. The tap's requests_per_minute is set to 100000 (the fake is
# unlimited), so the wire is measured, not the limiter. Then RUNS timed runs
# of the tap with a typical PII-hashing stream map (MAP, by default the
# tickets' title and the sessions' email through md5): the CPU a map costs.
#
# Latency rows (LATENCY_SIZES, default 100000): the fake answers every
# request after 300 ms plus up to 100 ms of jitter (LATENCY_MS, JITTER_MS)
# and enforces 1000 requests per rolling minute; the tap runs at its default
# 900/min, a first sync of N sessions (one stream) and of N tickets (the
# plain listing beside archived and spam, which the fake hides). The figure
# that matters is wall / budget: the wall time over the time the 900/min
# budget needs for the requests made (requests x 60 / 900). Medians of RUNS.
#
# Shape rows (SHAPES, default "uniform burst growth bulk bursts"): a first
# sync of SHAPE_SIZE (100,000) contacts at 300 ms per page and 1,000
# requests per minute, whatever their spread in time: uniform (a record a
# minute); burst (all within ten days, after a five-year empty start_date
# range); growth (ever more records per day, most recent); bulk (all stamped
# within one second, a hundred per millisecond); bursts (a hundred bursts of
# a thousand, with gaps fifty times as long). Figures: wall / budget (the
# time the default 900/min needs for the requests made), requests / the
# pages a plain walk needs (one keyset walk, no probe, no slice: each page
# after the first asks again for the records at its cursor, so ties at
# page ends cost pages), peak RSS and 429s; medians of RUNS. Then an
# incremental run with nothing new.
#
# BATCH rows (BATCH=1; off by default: they install MeltanoLabs
# target-postgres from PyPI into .venv-bench/ and start a PostgreSQL
# server): the same first sync (BATCH_SIZES, default 1000000 tickets, the
# data of the first rows, unpaced) as RECORD lines into a file and as gzip
# batch files (batch_config, batch_size 10000) into a scratch folder: wall,
# CPU per record, records per second, peak RSS, bytes written. Then the
# end-to-end time of a first sync of PG_SIZE (200000) tickets (--select
# tickets) piped into target-postgres, RECORD lines against BATCH files,
# each run into a schema of its own; the rows loaded are counted. Medians
# of RUNS. PG_SIZE=0 skips these; PG_OUTPUTS=BATCH runs only the BATCH row.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000 100000 1000000"}
RUNS=${RUNS:-3}
GZIP=${GZIP:-0}
RATE_SECONDS=${RATE_SECONDS:-120}
LATENCY_SIZES=${LATENCY_SIZES:-100000}
SHAPES=${SHAPES:-"uniform burst growth bulk bursts"}
SHAPE_SIZE=${SHAPE_SIZE:-100000}
BATCH=${BATCH:-0}
BATCH_SIZES=${BATCH_SIZES:-1000000}
PG_SIZE=${PG_SIZE:-200000}
PG_OUTPUTS=${PG_OUTPUTS:-"RECORD BATCH"}
LATENCY_MS=${LATENCY_MS:-300}
JITTER_MS=${JITTER_MS:-100}
MAP=${MAP:-'{"stream_maps": {"tickets": {"title": "md5(title) if title else None"}, "sessions": {"email": "md5(email) if email else None"}}}'}
target=${CARGO_TARGET_DIR:-target}

for tool in /usr/bin/time python3 jq curl; do
  command -v "$tool" >/dev/null || { echo "bench.sh needs $tool (GNU time for peak RSS, python3 for exact CPU)" >&2; exit 1; }
done
echo "==> building tap-gleap and fake-gleap (scripts/build.sh), then the fetch_only helper" >&2
# The binaries measured are the very ones demo.sh and e2e.sh run. The
# helper (an example) is built apart: examples bring the dev-dependencies,
# whose features would change the binaries' dependencies if built together.
./scripts/build.sh >&2
cargo build --release --locked --example fetch_only >&2
bin=$target/release
tap=${TAP:-$bin/tap-gleap}
fake=$bin/fake-gleap
helper=$bin/examples/fetch_only

work=$(mktemp -d "${TMPDIR:-/tmp}/tap-gleap-bench.XXXXXX")
fake_pid=
cleanup() {
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_fake() { # args: fake options
  rm -f "$work/ready"
  "$fake" --port 0 --ready-file "$work/ready" "$@" 2>"$work/fake.log" &
  fake_pid=$!
  for _ in $(seq 1 300); do
    [ -s "$work/ready" ] && break
    kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.log" >&2; exit 1; }
    sleep 0.1
  done
  url=$(cat "$work/ready")
}
stop_fake() { kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fake_pid=; }
# CPU seconds the fake has used so far (utime + stime).
fake_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$fake_pid/stat"; }
# The pages a plain keyset walk of 1000 a page asks for the records of a
# Singer output on stdin (see tests/backfill.rs, plain_walk_pages).
plain_walk_pages() {
  python3 -c '
import bisect, json, sys
stamps = sorted({m["record"]["id"]: m["record"]["updatedAt"] for m in map(json.loads, sys.stdin) if m["type"] == "RECORD"}.values())
pages, start, limit = 0, 0, 1000
while True:
    page = stamps[start:start + limit]
    pages += 1
    if len(page) < limit:
        break
    last = page[-1]
    start = (bisect.bisect_right if page[0] == last else bisect.bisect_left)(stamps, last)
print(pages)'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# The median, and the largest, of the values given as arguments.
median_of() { printf '%s\n' "$@" | median; }
largest_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }
# Runs a command, its stdout into $1; prints "wall cpu peak_rss_kb fake_cpu".
# Peak RSS from GNU time. CPU (user + system) from the rusage that wait4
# returns for GNU time and the command: exact (the kernel adjusts the sum
# to the scheduler's runtime), where GNU time prints 10 ms steps, a quarter
# of the whole figure at 10k tickets. GNU time's own share is ~1 ms.
timed() {
  local out=$1 before after
  shift
  before=$(fake_cpu)
  python3 - "$out" "$work/rss" "$@" >"$work/time" <<'PY'
import os, subprocess, sys, time
out, rss, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.monotonic()
with open(out, "wb") as f:
    child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss] + cmd, stdout=f, stdin=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # reaped above
print(f"{time.monotonic() - start:.3f} {usage.ru_utime + usage.ru_stime:.4f} {open(rss).read().split()[-1]}")
PY
  after=$(fake_cpu)
  awk -v a="$after" -v b="$before" '{printf "%s %s %s %.3f\n", $1, $2, $3, a - b}' "$work/time"
}

gzip_flag=--no-gzip
[ "$GZIP" = 1 ] && gzip_flag=
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); fake gzip: $([ "$GZIP" = 1 ] && echo on || echo off); $RUNS runs per figure, medians" >&2
[ "$SIZES" = 0 ] && SIZES=
[ -z "$SIZES" ] || printf "\n%-9s %9s %7s %7s %8s %10s %7s %8s | %9s %6s %8s | %9s %9s | %9s %10s\n" \
  tickets records wall_s cpu_s us/rec records/s MB/s rss_MB ceiling_s x_ceil ceil_MB fake_cpu_s fake_MB/s map_cpu_s map_us/rec
for n in $SIZES; do
  # shellcheck disable=SC2086 # FAKE_ARGS: several options
  start_fake $gzip_flag ${FAKE_ARGS:-} --tickets "$n" --sessions $((n / 10)) --messages $((n / 10)) \
    --surveys 10 --responses-per-survey $(((n / 1000) > 1 ? n / 1000 : 1))
  cat >"$work/config.json" <<EOF
{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "$url", "requests_per_minute": 100000}
EOF
  # Untimed: the records, the bytes, and the requests to replay.
  read -r bytes _lines records < <(RUST_LOG=info,tap_gleap::client=debug "$tap" --config "$work/config.json" \
    --log-format json 2>"$work/requests.log" | "$helper" --count)
  printf '%s\n' "$MAP" >"$work/map.json"
  walls=() cpus=() rsss=() fcpus=() cwalls=() mcpus=()
  for _ in $(seq 1 "$RUNS"); do
    read -r w c m f < <(timed /dev/null "$tap" --config "$work/config.json" 2>"$work/tap.log")
    walls+=("$w") cpus+=("$c") rsss+=("$m") fcpus+=("$f")
    read -r w _ _ _ < <(timed "$work/ceiling.txt" "$helper" --log "$work/requests.log" --config "$work/config.json")
    cwalls+=("$w")
    read -r _ c _ _ < <(timed /dev/null "$tap" --config "$work/config.json" --config "$work/map.json" 2>"$work/tap-map.log")
    mcpus+=("$c")
  done
  wall=$(median_of "${walls[@]}")
  cpu=$(median_of "${cpus[@]}")
  rss=$(median_of "${rsss[@]}")
  fcpu=$(median_of "${fcpus[@]}")
  ceil=$(median_of "${cwalls[@]}")
  mcpu=$(median_of "${mcpus[@]}")
  awk -v n="$n" -v r="$records" -v w="$wall" -v c="$cpu" -v m="$rss" -v b="$bytes" -v cw="$ceil" -v f="$fcpu" -v mc="$mcpu" 'BEGIN {
    printf "%-9d %9d %7.2f %7.2f %8.2f %10.0f %7.0f %8.1f | %9.2f %6.2f %8.0f | %9.2f %9.0f | %9.2f %10.2f\n",
      n, r, w, c, c * 1e6 / r, r / w, b / 1e6 / w, m / 1024, cw, w / cw, b / 1e6 / cw, f, b / 1e6 / f, mc, mc * 1e6 / r }'
  stop_fake
done
[ -z "$SIZES" ] || cat <<'EOF'

  wall_s, cpu_s: the tap's wall and CPU (user + system) seconds for the whole sync into /dev/null
  us/rec: CPU microseconds per record; MB/s: Singer output per wall second; rss_MB: the tap's peak RSS
  ceiling_s: the same requests fetched and discarded (fetch_only); x_ceil: wall_s / ceiling_s
  ceil_MB: Singer MB per ceiling second; fake_cpu_s: the fake's CPU during a tap run (wire-limited if close to wall_s)
  map_cpu_s, map_us/rec: the tap's CPU with the stream map MAP (per record of the sync; the streams MAP names go through the mapper, the others are copied)
EOF

if [ "$RATE_SECONDS" -gt 0 ]; then
  echo >&2
  echo "==> rate limit: the fake enforces 1000 requests per rolling 60 s; the tap runs at its default 900/min for ${RATE_SECONDS}s (page_size 10, so pages remain)" >&2
  start_fake $gzip_flag --rate-limit 1000 --tickets 200000 --sessions 1000 --messages 1000
  cat >"$work/config.json" <<EOF
{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "$url", "page_size": 10}
EOF
  started=$(date +%s.%N)
  "$tap" --config "$work/config.json" >/dev/null 2>"$work/rate.log" &
  tap_pid=$!
  sleep "$RATE_SECONDS"
  kill -TERM "$tap_pid" 2>/dev/null || true
  wait "$tap_pid" 2>/dev/null || true
  ended=$(date +%s.%N)
  stats=$(curl -s "${url%/v3}/_fake/stats")
  stop_fake
  read -r requests max_in_window rate_limited < <(jq -r '"\(.requests) \(.max_in_window) \(.rate_limited)"' <<<"$stats")
  awk -v r="$requests" -v m="$max_in_window" -v l="$rate_limited" -v s="$started" -v e="$ended" 'BEGIN {
    secs = e - s; rpm = r / secs * 60
    printf "rate limit: %d requests in %.1fs = %.0f/min, %.1f%% of the configured 900/min; max_in_window %d (fake limit 1000); 429s %d\n",
      r, secs, rpm, 100 * rpm / 900, m, l }'
fi

if [ "$LATENCY_SIZES" != 0 ]; then
  echo >&2
  echo "==> latency: the fake answers after ${LATENCY_MS} ms + up to ${JITTER_MS} ms and enforces 1000/min; the tap at its default 900/min" >&2
  printf "\n%-9s %9s %8s %8s %7s %8s %8s %7s %6s\n" stream records requests wall_s budget_s x_budget rss_MB max_60s 429s
  for n in $LATENCY_SIZES; do
    for stream in sessions tickets; do
      other=$((n / 100))
      case $stream in
        sessions) data="--tickets $other --sessions $n" ;;
        tickets) data="--tickets $n --sessions $other" ;;
      esac
      walls=() reqs=() rsss=() maxes=() limited=()
      for _ in $(seq 1 "$RUNS"); do
        # shellcheck disable=SC2086 # $data is a list of options
        start_fake --no-gzip --latency-ms "$LATENCY_MS" --latency-jitter-ms "$JITTER_MS" --rate-limit 1000 \
          $data --messages "$other" --surveys 1 --responses-per-survey 1
        cat >"$work/config.json" <<EOF
{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "$url"}
EOF
        read -r w _ m _ < <(timed "$work/latency.jsonl" "$tap" --config "$work/config.json" --select "$stream" 2>"$work/latency.log")
        stats=$(curl -s "${url%/v3}/_fake/stats")
        stop_fake
        records=$(grep -c '"type":"RECORD"' "$work/latency.jsonl")
        walls+=("$w") rsss+=("$m")
        reqs+=("$(jq -r .requests <<<"$stats")")
        maxes+=("$(jq -r .max_in_window <<<"$stats")")
        limited+=("$(jq -r .rate_limited <<<"$stats")")
      done
      wall=$(median_of "${walls[@]}")
      req=$(median_of "${reqs[@]}")
      rss=$(median_of "${rsss[@]}")
      mx=$(largest_of "${maxes[@]}")
      rl=$(largest_of "${limited[@]}")
      awk -v s="$stream" -v r="$records" -v q="$req" -v w="$wall" -v m="$rss" -v x="$mx" -v l="$rl" 'BEGIN {
        budget = q * 60 / 900
        printf "%-9s %9d %8d %8.2f %7.2f %8.2f %8.1f %7d %6d\n", s, r, q, w, budget, w / budget, m / 1024, x, l }'
    done
  done
  cat <<'EOF'

  requests: made by the tap (the fake's count); budget_s: requests x 60 / 900, the time the default budget needs for them
  x_budget: wall_s / budget_s (1.00: every moment of the sync spent at the budget's pace)
  max_60s: most requests the fake admitted in any rolling 60 s (its limit 1000); 429s: answers over the limit (worst run)
EOF
fi

if [ "$SHAPES" != 0 ]; then
  echo >&2
  echo "==> shapes: a first sync of $SHAPE_SIZE contacts spread in time as each shape says; the fake answers after ${LATENCY_MS} ms + up to ${JITTER_MS} ms and enforces 1000/min" >&2
  printf "\n%-8s %9s %8s %8s %6s %7s %8s %8s %6s %5s %13s\n" shape records requests plain x_plain wall_s budget_s x_budget rss_MB 429s incr_requests
  n=$SHAPE_SIZE
  for shape in $SHAPES; do
    start_date=
    case $shape in
      uniform) data="--step-ms 60000" ;;
      burst) data="--base-time 2022-06-01T00:00:00Z --step-ms $((864000000 / n))"; start_date=2021-12-04T00:00:00Z ;;
      growth) data="--time-shape growth --step-ms 600" ;;
      bulk) data="--tie-group 100 --step-ms 1" ;;
      bursts) data="--time-shape bursts --step-ms 1000" ;;
      *) echo "unknown shape $shape" >&2; exit 1 ;;
    esac
    walls=() reqs=() rsss=() limited=() incrs=()
    for _ in $(seq 1 "$RUNS"); do
      # shellcheck disable=SC2086 # $data is a list of options
      start_fake --no-gzip --latency-ms "$LATENCY_MS" --latency-jitter-ms "$JITTER_MS" --rate-limit 1000 \
        --sessions "$n" $data --tickets 10 --messages 10 --surveys 1 --responses-per-survey 1
      printf '{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "%s"%s}\n' "$url" \
        "${start_date:+, \"start_date\": \"$start_date\"}" >"$work/config.json"
      read -r w _ m _ < <(timed "$work/shape.jsonl" "$tap" --config "$work/config.json" --select sessions 2>"$work/shape.log")
      stats=$(curl -s "${url%/v3}/_fake/stats")
      tail -n 1 "$work/shape.jsonl" | jq -c .value >"$work/shape-state.json"
      "$tap" --config "$work/config.json" --select sessions --state "$work/shape-state.json" >/dev/null 2>"$work/shape-incr.log"
      after=$(curl -s "${url%/v3}/_fake/stats")
      stop_fake
      records=$(grep -c '"type":"RECORD"' "$work/shape.jsonl")
      plain=$(plain_walk_pages <"$work/shape.jsonl")
      walls+=("$w") rsss+=("$m")
      reqs+=("$(jq -r .requests <<<"$stats")")
      limited+=("$(jq -r .rate_limited <<<"$stats")")
      incrs+=("$(($(jq -r .requests <<<"$after") - $(jq -r .requests <<<"$stats")))")
    done
    wall=$(median_of "${walls[@]}")
    req=$(median_of "${reqs[@]}")
    rss=$(median_of "${rsss[@]}")
    rl=$(largest_of "${limited[@]}")
    incr=$(median_of "${incrs[@]}")
    awk -v s="$shape" -v r="$records" -v q="$req" -v mn="$plain" -v w="$wall" -v m="$rss" -v l="$rl" -v i="$incr" 'BEGIN {
      budget = q * 60 / 900
      printf "%-8s %9d %8d %8d %6.2f %7.2f %8.2f %8.2f %6.1f %5d %13d\n", s, r, q, mn, q / mn, w, budget, w / budget, m / 1024, l, i }'
  done
  cat <<'EOF'

  requests: made by the tap for the first sync (the fake's count, every probe included)
  plain: the pages one keyset walk needs for the same records (records / 1000 + 1 without ties at page ends)
  x_plain: requests / plain; x_budget: wall_s / budget_s, budget_s = requests x 60 / 900
  incr_requests: an incremental run right after, with nothing new (the settle window read again)
EOF
fi

if [ "$BATCH" = 1 ]; then
  echo >&2
  echo "==> BATCH: records as gzip batch files (batch_config) beside RECORD lines, unpaced; then into target-postgres" >&2
  printf "\n%-9s %-7s %9s %7s %7s %8s %10s %7s %8s %6s\n" tickets output records wall_s cpu_s us/rec records/s rss_MB out_MB files
  batch_json() { # args: folder
    printf '{"batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": "file://%s"}, "batch_size": 10000}}\n' "$1"
  }
  for n in $BATCH_SIZES; do
    # shellcheck disable=SC2086 # FAKE_ARGS: several options
    start_fake $gzip_flag ${FAKE_ARGS:-} --tickets "$n" --sessions $((n / 10)) --messages $((n / 10)) \
      --surveys 10 --responses-per-survey $(((n / 1000) > 1 ? n / 1000 : 1))
    printf '{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "%s", "requests_per_minute": 100000}\n' \
      "$url" >"$work/config.json"
    batch_json "$work/batches" >"$work/batch.json"
    for mode in RECORD BATCH; do
      walls=() cpus=() rsss=() sizes=() files=() records=0
      for _ in $(seq 1 "$RUNS"); do
        rm -rf "$work/batches" "$work/out.jsonl"
        if [ "$mode" = RECORD ]; then
          read -r w c m _ < <(timed "$work/out.jsonl" "$tap" --config "$work/config.json" 2>"$work/tap.log")
          records=$(grep -c '"type":"RECORD"' "$work/out.jsonl")
          sizes+=("$(stat -c %s "$work/out.jsonl")") files+=(0)
        else
          read -r w c m _ < <(timed "$work/out.jsonl" "$tap" --config "$work/config.json" --config "$work/batch.json" 2>"$work/tap.log")
          records=$(find "$work/batches" -name '*.json.gz' -exec zcat {} + | wc -l)
          sizes+=("$(du -cb "$work/batches"/*.json.gz | tail -n 1 | cut -f1)")
          files+=("$(grep -c '"type":"BATCH"' "$work/out.jsonl")")
        fi
        walls+=("$w") cpus+=("$c") rsss+=("$m")
      done
      awk -v n="$n" -v o="$mode" -v r="$records" -v w="$(median_of "${walls[@]}")" -v c="$(median_of "${cpus[@]}")" \
        -v m="$(median_of "${rsss[@]}")" -v b="$(median_of "${sizes[@]}")" -v f="$(median_of "${files[@]}")" 'BEGIN {
        printf "%-9d %-7s %9d %7.2f %7.2f %8.2f %10.0f %7.1f %8.0f %6d\n", n, o, r, w, c, c * 1e6 / r, r / w, m / 1024, b / 1e6, f }'
    done
    stop_fake
  done
  echo
  echo "  output: RECORD lines into a file, or gzip batch files (level 1, 10000 records each) named by BATCH lines"
  echo "  records: RECORD lines, or lines of the batch files; out_MB: stdout's bytes, or the batch files' (compressed)"

fi

if [ "$BATCH" = 1 ] && [ "$PG_SIZE" != 0 ]; then
  echo >&2
  echo "==> BATCH: a first sync of $PG_SIZE tickets into MeltanoLabs target-postgres (a PostgreSQL server started here)" >&2
  batch_json() { # args: folder
    printf '{"batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": "file://%s"}, "batch_size": 10000}}\n' "$1"
  }
  pg_venv=.venv-bench/target-postgres
  if [ ! -x "$pg_venv/bin/target-postgres" ] || ! cmp -s meltano/requirements/target-postgres.txt "$pg_venv/.requirements.txt"; then
    rm -rf "$pg_venv"
    python3 -m venv "$pg_venv"
    "$pg_venv/bin/pip" install --quiet --disable-pip-version-check meltanolabs-target-postgres==0.8.1 \
      -c meltano/requirements/target-postgres.txt >&2
    cp meltano/requirements/target-postgres.txt "$pg_venv/.requirements.txt"
  fi
  initdb=$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -n 1)
  pg_bin=$(dirname "$(readlink -f "$initdb")")
  as_pg=()
  mkdir -p "$work/pg"
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then chown postgres "$work/pg"; chmod 755 "$work"; as_pg=(runuser -u postgres --); fi
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w -o \
    "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
  stop_pg() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true; }
  trap 'stop_pg; cleanup' EXIT
  start_fake $gzip_flag --tickets "$PG_SIZE" --sessions 10 --messages 10 --surveys 1 --responses-per-survey 1
  printf '{"api_key": "fake-api-key", "project_id": "fake-project", "api_url": "%s", "requests_per_minute": 100000}\n' \
    "$url" >"$work/config.json"
  batch_json "$work/batches" >"$work/batch.json"
  printf "\n%-9s %-7s %9s %8s %10s %9s\n" tickets output rows wall_s rows/s cpu_s
  run_no=0
  for mode in $PG_OUTPUTS; do
    walls=() cpus=() rows=()
    for _ in $(seq 1 "$RUNS"); do
      run_no=$((run_no + 1))
      rm -rf "$work/batches"
      schema="bench_${mode,,}_$run_no"
      printf '{"host": "127.0.0.1", "port": %s, "user": "postgres", "password": "x", "database": "postgres", "default_target_schema": "%s", "add_record_metadata": true}\n' \
        "$pg_port" "$schema" >"$work/target.json"
      extra=
      [ "$mode" = BATCH ] && extra="--config $work/batch.json"
      read -r w c _ _ < <(timed "$work/target-state.jsonl" bash -c \
        "set -o pipefail; $tap --config $work/config.json $extra --select tickets 2>$work/tap.log | $pg_venv/bin/target-postgres --config $work/target.json 2>$work/target.log")
      walls+=("$w") cpus+=("$c")
      rows+=("$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -Atc "select count(*) from $schema.tickets")")
    done
    awk -v n="$PG_SIZE" -v o="$mode" -v r="$(median_of "${rows[@]}")" -v w="$(median_of "${walls[@]}")" -v c="$(median_of "${cpus[@]}")" 'BEGIN {
      printf "%-9d %-7s %9d %8.2f %10.0f %9.2f\n", n, o, r, w, r / w, c }'
  done
  stop_fake
  stop_pg
  echo
  echo "  wall_s: tap-gleap --select tickets | target-postgres, from start to the target's exit (every row committed)"
  echo "  rows: rows in the table after the run (the fake's tickets); cpu_s: the tap's and the target's CPU together"
fi
