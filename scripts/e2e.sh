#!/usr/bin/env bash
# End-to-end test: tap-gleap run by Meltano into real Singer targets from
# PyPI (target-jsonl, target-duckdb, MeltanoLabs target-postgres with a
# PostgreSQL server started here), installed by pip (a wheel built by
# maturin) and by cargo install, and the README's cron recipe; all against
# the bundled fake Gleap API. The checks are in e2e/test_e2e.py.
#
#   ./scripts/e2e.sh           # ~10 min on 2 cores from a clean checkout
#
# Needs: cargo, python3 (3.10+) with venv, network access to PyPI and
# crates.io, and PostgreSQL's server binaries (installed with apt-get when
# missing and running as root). Everything it makes is under .venv-e2e/
# (ignored by git) and meltano/.meltano/ (Meltano's plugin virtualenvs).
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

# One target dir for every build below (cargo, pip's maturin, Meltano's uv,
# cargo install), so that the tap is compiled once. The tap is built on its
# own, as pip and cargo install build it: built together with fake-gleap its
# dependencies would get other features and be compiled again.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
fi
export CARGO_TARGET_DIR
build=$SECONDS
echo "==> e2e: cargo build --release -p tap-gleap; cargo build --release -p fake-gleap"
cargo build --release --locked --quiet -p tap-gleap
cargo build --release --locked --quiet -p fake-gleap
echo "    ($((SECONDS - build)) s)"

rm -rf "$work"
mkdir -p "$work"
# Its last line is the summary, "e2e: N passed, N failed"; exit 1 on a failure.
TAP_BIN="$CARGO_TARGET_DIR/release/tap-gleap" FAKE_BIN="$CARGO_TARGET_DIR/release/fake-gleap" \
  MAPPER_BIN="$PWD/$mapper_venv/bin/meltano-map-transform" \
  E2E_WORK="$work" E2E_SETUP_SECONDS=$((SECONDS - start)) exec "$venv/bin/python" e2e/test_e2e.py
