#!/usr/bin/env bash
# Run every fuzz target (or the ones named) for SECONDS each:
#   fuzz/run.sh SECONDS [TARGET...]
# Builds the targets with cargo-fuzz (libFuzzer; RUSTC_BOOTSTRAP=1 lets the stable toolchain build them) in
# fuzz/target (or $FUZZ_TARGET_DIR), seeds fuzz/corpus/<target>/ from the fixtures when it is empty (fuzz/seeds.sh), and prints per
# target the executions, the corpus size and the crashes. A crash input is written to fuzz/artifacts/<target>/;
# keep it as fuzz/regressions/<target>/<name> so `cargo test --test fuzz_regressions` replays it.
# Exits 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
target_dir=${FUZZ_TARGET_DIR:-target}
build=(-O --debug-assertions --sanitizer none --target-dir "$target_dir")
cargo fuzz build "${build[@]}" >&2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
bin_dir=$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release
if [ ! -d corpus ] || [ -z "$(ls -A corpus 2>/dev/null)" ]; then
  ./seeds.sh >&2
fi

mkdir -p "$target_dir/logs"
summary=$target_dir/fuzz-summary.txt
printf '%-14s %12s %8s %8s\n' target executions corpus crashes | tee "$summary"
failed=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  before=$(find "artifacts/$target" -type f | wc -l)
  log=$target_dir/logs/$target.log
  status=0
  "$bin_dir/$target" "corpus/$target" \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "artifacts/$target" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="failed($status)"; fi
  printf '%-14s %12s %8s %8s\n' "$target" "${runs:-?}" "$(find "corpus/$target" -type f | wc -l)" "$crashes" |
    tee -a "$summary"
  if [ "$status" -ne 0 ]; then
    failed=1
    grep -m1 -A12 -E "panicked at|ERROR: libFuzzer" "$log" >&2 || tail -20 "$log" >&2
  fi
done
exit $failed
