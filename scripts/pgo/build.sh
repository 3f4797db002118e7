#!/usr/bin/env bash
# The release binary built with profile-guided optimisation (PGO): an instrumented build of `onedoor` runs
# the training workload (scripts/pgo/train.sh: the project's own generated referrals and roster, validation,
# every conformance case, the gateway server under concurrent posts), and the counts it writes guide the
# compiler's inlining, code layout and branch order in a second build. The checks are the same code: only the
# machine code is laid out for the paths a run takes. `cargo build --release` stays the plain build.
#
# Usage: bash scripts/pgo/build.sh    (prints only the binary's path, ${CARGO_TARGET_DIR:-target}/pgo/onedoor,
# on standard output; the builds and the training report on standard error)
# Needs: rustup (the llvm-tools component is added if missing), curl for the server's part of the training.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools >&2
fi
[ -x "$profdata" ] || { echo "llvm-profdata not found at $profdata (rustup component add llvm-tools)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/profiles" "$target/pgo"

# Each build has a target folder of its own: their flags differ, and one would rebuild the other's
# dependencies every time. `--target` keeps the flags off build scripts and procedural macros.
# The instrumented build's flags never change (each run's counts go where LLVM_PROFILE_FILE says), so an
# unchanged source reuses it; the optimised build's flags name this run's counts, a new file each time, so
# cargo builds it again whenever the counts may differ.
echo "== 1/3 the instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$target/pgo-generate/profiles" CARGO_TARGET_DIR="$target/pgo-generate" \
  cargo build --release --bin onedoor --target "$host"

echo "== 2/3 the training workload" >&2
LLVM_PROFILE_FILE="$work/profiles/onedoor-%p-%m.profraw" \
  bash scripts/pgo/train.sh "$target/pgo-generate/$host/release/onedoor" "$work/train" >&2
"$profdata" merge -o "$work/onedoor.profdata" "$work/profiles"

echo "== 3/3 the optimised build" >&2
RUSTFLAGS="-Cprofile-use=$work/onedoor.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
  CARGO_TARGET_DIR="$target/pgo-use" cargo build --release --bin onedoor --target "$host"
cp "$target/pgo-use/$host/release/onedoor" "$target/pgo/onedoor"
echo "$target/pgo/onedoor"
