#!/usr/bin/env bash
# End-to-end test: tap-gleap run by Meltano into real Singer targets from
# PyPI (target-jsonl, target-duckdb, MeltanoLabs target-postgres with a
# PostgreSQL server started here), installed from the prebuilt wheel
# (scripts/wheel.sh) where no Rust toolchain is on PATH, and from source
# (pip install of the repository, Meltano's pip_url pointing at it, cargo
# install), and the README's cron recipe; all against the bundled fake
# Gleap API. The checks are in e2e/test_e2e.py.
#
#   ./scripts/e2e.sh           # ~11 min on 2 cores from a clean checkout, ~1 when built
#
# Needs: cargo, python3 (3.10+) with venv, network access to PyPI and
# crates.io, and PostgreSQL's server binaries (installed with apt-get when
# missing and running as root). Everything it makes is under .venv-e2e/
# (ignored by git), .venv-wheel/ and dist/ (scripts/wheel.sh),
# meltano/.meltano/ (Meltano's plugin virtualenvs) and the cargo target
# directory; it ends by listing their sizes, having removed its scratch
# directory (.venv-e2e/work), which no later run reuses.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
venv=.venv-e2e/venv
work=.venv-e2e/work

echo "==> e2e: Python virtualenvs $venv and .venv-e2e/mapper (pinned: e2e/requirements*.txt)"
if [ ! -x "$venv/bin/python" ] || ! cmp -s e2e/requirements.txt "$venv/.requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r e2e/requirements.txt
  cp e2e/requirements.txt "$venv/.requirements.txt"
fi
# The SDK's own mapper, the reference for stream maps and flattening, in a
# virtualenv of its own (its singer-sdk pins differ from Meltano's).
mapper_venv=.venv-e2e/mapper
if [ ! -x "$mapper_venv/bin/meltano-map-transform" ] || ! cmp -s e2e/requirements-mapper.txt "$mapper_venv/.requirements.txt"; then
  rm -rf "$mapper_venv"
  python3 -m venv "$mapper_venv"
  "$mapper_venv/bin/pip" install --quiet --disable-pip-version-check -r e2e/requirements-mapper.txt
  cp e2e/requirements-mapper.txt "$mapper_venv/.requirements.txt"
fi
echo "    ($((SECONDS - start)) s)"

if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> e2e: installing PostgreSQL (apt-get)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "e2e: PostgreSQL's server binaries (initdb, pg_ctl) are needed: install the postgresql package" >&2
    exit 1
  fi
fi

# One target dir for every build below (scripts/build.sh, scripts/wheel.sh,
# pip's maturin, Meltano's uv, cargo install).
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
fi
export CARGO_TARGET_DIR
setup=$((SECONDS - start))

# Three compiles of the tap, each for what it stands for; none repeats
# another, and a second run of this script compiles nothing:
# - scripts/build.sh: tap-gleap and fake-gleap in one command, as demo.sh
#   and bench.sh build them (the fake serves the test; the tap answers
#   --about for the plugin-definition check);
# - scripts/wheel.sh: the prebuilt wheel, linked by zig (glibc 2.17);
# - in the test, `pip install <repo>`: the tap alone, as a source install
#   builds it (its dependencies get fewer features than beside the fake).
#   Meltano's source install and `cargo install` reuse that one.
build=$SECONDS
echo "==> e2e: scripts/build.sh (cargo build --release --locked --workspace)"
./scripts/build.sh
build=$((SECONDS - build))
echo "    ($build s)"

wheel_start=$SECONDS
echo "==> e2e: scripts/wheel.sh (the prebuilt manylinux wheel)"
wheel=$(./scripts/wheel.sh | tail -n 1)
wheel_seconds=$((SECONDS - wheel_start))
echo "    $wheel ($wheel_seconds s)"

rm -rf "$work"
mkdir -p "$work/bin"
# Copies: the source install in the test rebuilds target/release/tap-gleap
# (the tap alone), and the test compares against these.
cp "$CARGO_TARGET_DIR/release/tap-gleap" "$CARGO_TARGET_DIR/release/fake-gleap" "$work/bin/"
# The test's last line is the summary, "e2e: N passed, N failed"; exit 1
# on a failure. It is printed again last, after what stays on disk.
log=.venv-e2e/e2e.log
rc=0
TAP_BIN="$work/bin/tap-gleap" FAKE_BIN="$work/bin/fake-gleap" WHEEL="$wheel" E2E_WORK="$work" \
  MAPPER_BIN="$PWD/$mapper_venv/bin/meltano-map-transform" \
  E2E_SETUP_SECONDS=$setup E2E_BUILD_SECONDS=$build E2E_WHEEL_SECONDS=$wheel_seconds \
  "$venv/bin/python" e2e/test_e2e.py 2>&1 | tee "$log" || rc=$?
# The scratch directory (the throwaway virtualenvs of the wheel and pip
# installs, cargo install's root, copies of the binaries) is remade by
# every run: nothing in it is reused. What is reused stays, and is said.
rm -rf "$work"
echo "==> e2e: kept for the next run (delete to reclaim the space):"
for d in "$CARGO_TARGET_DIR" .venv-e2e .venv-wheel meltano/.meltano dist; do
  [ -e "$d" ] && du -sh "$d" 2>/dev/null | sed 's/^/    /'
done
tail -n 1 "$log"
exit "$rc"
