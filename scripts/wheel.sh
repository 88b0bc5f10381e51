#!/usr/bin/env bash
# Builds the prebuilt wheel of the tap, dist/tap_gleap-<version>-py3-none-
# manylinux2014_x86_64.manylinux_2_17_x86_64.whl (two names of one tag, the
# older for pip < 20.3), which carries the `tap-gleap` binary alone
# (no Python code). `pip install` of it needs no Rust toolchain, and it runs
# on any x86_64 Linux with glibc 2.17 or later: zig links it against
# glibc 2.17's symbols, whatever this machine's glibc is.
#
#   ./scripts/wheel.sh         # ~3 min on 2 cores the first time (its own compile, see below)
#
# Reproducible: maturin, zig and auditwheel are pinned (scripts/wheel-
# requirements.txt) in their own virtualenv, .venv-wheel/ (ignored by git);
# SOURCE_DATE_EPOCH is the time of the last commit that changed the wheel's
# inputs, so the zip's timestamps don't change between builds; source
# paths are remapped, so the clone's location leaves no trace in the
# binary. Two builds of one commit give the same bytes (same sha256), in
# any directory.
#
# This is a compile of its own, beside scripts/build.sh's: another linker
# (zig), the explicit target x86_64-unknown-linux-gnu (its own directory
# under target/) and the tap's features alone, as pip builds it. It does
# not disturb the build of scripts/build.sh; a second run is incremental.
#
# Then checks the result: the file name's tag is manylinux_2_17_x86_64,
# auditwheel (reading the binary's symbol versions) agrees, the binary is
# stripped and the wheel holds nothing but it. Prints the wheel's path and
# size; its last line is the path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=.venv-wheel
req=scripts/wheel-requirements.txt
start=$SECONDS

if [ ! -x "$venv/bin/maturin" ] || ! cmp -s "$req" "$venv/.requirements.txt"; then
  echo "==> wheel: virtualenv $venv (pinned: $req)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements.txt"
fi
# maturin finds zig as `python3 -m ziglang`: this virtualenv's python3.
export PATH="$root/$venv/bin:$PATH"

# The time of the last commit that changed what goes into the wheel (the
# binary's sources, its metadata): the zip's timestamps. A commit that
# touches only tests or scripts leaves the wheel's bytes as they were, and
# the compile too (the cc crate, which builds ring's C code, reruns when
# SOURCE_DATE_EPOCH changes). A SOURCE_DATE_EPOCH already set wins.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- Cargo.toml Cargo.lock pyproject.toml README.md src schemas \
    build.rs .cargo 2>/dev/null || true)
  [ -n "$SOURCE_DATE_EPOCH" ] || { echo "wheel.sh: not a git checkout with commits: set SOURCE_DATE_EPOCH" >&2; exit 1; }
fi
export SOURCE_DATE_EPOCH
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# Paths into this clone and into cargo's registry, as they would otherwise
# appear in panic messages, are the same wherever the build runs.
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$root=. --remap-path-prefix=$cargo_home=/cargo"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tag=manylinux_2_17_x86_64
mkdir -p dist
rm -f dist/tap_gleap-*.whl

echo "==> wheel: maturin build --release --zig --compatibility manylinux_2_17 --strip (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
maturin build --release --locked --zig --compatibility manylinux_2_17 --strip \
  --target x86_64-unknown-linux-gnu --auditwheel check --out dist >&2

# maturin names it with the legacy alias too, for pip < 20.3:
# tap_gleap-<version>-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
wheels=(dist/tap_gleap-"$version"-py3-none-*.whl)
wheel=${wheels[0]}
if [ "${#wheels[@]}" != 1 ] || [ ! -f "$wheel" ]; then
  echo "wheel.sh: expected one dist/tap_gleap-$version-py3-none-*.whl; dist/ holds: $(ls dist)" >&2
  exit 1
fi
case ".$(basename "$wheel" .whl | cut -d- -f5)." in
  *".$tag."*) ;;
  *) echo "wheel.sh: $wheel: the platform tag is not $tag" >&2; exit 1 ;;
esac

echo "==> wheel: auditwheel show $wheel" >&2
shown=$(auditwheel show "$wheel" 2>&1) || { echo "$shown" >&2; exit 1; }
echo "$shown" | sed 's/^/    /' >&2
# auditwheel names the most compatible tag the binary's symbols allow: the
# wheel's own tag must be that one (a manylinux tag), not a promise the
# binary breaks.
if ! tr -s ' \n' ' ' <<<"$shown" | grep -q "consistent with the following platform tag: \"$tag\""; then
  echo "wheel.sh: auditwheel does not find $wheel consistent with $tag" >&2
  exit 1
fi

python3 - "$wheel" "$version" >&2 <<'PY'
import sys, zipfile
path, version = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(path).namelist()
binary = f"tap_gleap-{version}.data/scripts/tap-gleap"
others = [n for n in names if n != binary and not n.startswith(f"tap_gleap-{version}.dist-info/")]
if binary not in names or others:
    sys.exit(f"wheel.sh: the wheel should hold {binary} and its dist-info only; it holds {names}")
import io
from elftools.elf.elffile import ELFFile  # pyelftools, which auditwheel brings
elf = zipfile.ZipFile(path).read(binary)
sections = {s.name for s in ELFFile(io.BytesIO(elf)).iter_sections()}
# (.debug_gdb_scripts stays: rustc's pointer to gdb's pretty-printers, a few bytes.)
if sections & {".symtab", ".strtab", ".debug_info", ".debug_line", ".debug_str"}:
    sys.exit(f"wheel.sh: the binary in the wheel is not stripped: {sorted(sections)}")
print(f"    holds {binary} ({len(elf) / 1e6:.1f} MB, stripped) and its dist-info, nothing else")
PY

size=$(stat -c %s "$wheel")
sha=$(sha256sum "$wheel" | cut -d' ' -f1)
echo "==> wheel: $wheel, $(awk -v s="$size" 'BEGIN {printf "%.1f MB (%d bytes)", s / 1e6, s}'), sha256 $sha ($((SECONDS - start)) s)" >&2
echo "$root/$wheel"
