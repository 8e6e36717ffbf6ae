#!/usr/bin/env bash
# A property-based fuzz run, before trusting a format change:
#   tools/fuzz-campaign.sh [SECONDS_PER_TARGET] [PARALLEL]
# builds every libFuzzer target with clang (ASan+UBSan), runs each for the given time
# (default 600 s) from a copy of its checked-in corpus, then runs the rapidcheck model
# tests with a large RC_PARAMS count. Prints execs, coverage and failures per target;
# crashing inputs are kept in build-fuzz/campaign/<target>/.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
parallel=${2:-2}
"$top/tools/install-deps.sh" --tests  # clang and its sanitizer runtimes
build="$top/build-fuzz"
CC=clang CXX=clang++ cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKHO_FUZZ=ON \
  -DKHO_BUILD_BENCHMARKS=OFF >/dev/null || exit 1
targets=$(cd "$top/tests/fuzz" && ls fuzz_*.cpp diff_*.cpp reseal_*.cpp | sed 's/\.cpp$//')
cmake --build "$build" -j"$(nproc)" --target $targets || exit 1

run_target() {
  local t=$1 dir="$build/campaign/$1"
  rm -rf "$dir" && mkdir -p "$dir/corpus" && cp "$top/tests/fuzz/corpus/$t/"* "$dir/corpus/"
  (cd "$dir" && "$build/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=4096 corpus >"$dir/log" 2>&1)
  local rc=$?
  local execs cov ft
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
  cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1)
  ft=$(grep -oE 'ft: [0-9]+' "$dir/log" | tail -1)
  local crashes
  crashes=$(ls "$dir" | grep -cE '^(crash|leak|timeout|oom)-' || true)
  printf '%-24s execs %-10s %-10s %-10s failures %s (exit %s)\n' "$t" "${execs:-?}" "${cov:-cov: ?}" "${ft:-ft: ?}" "$crashes" "$rc"
}
export -f run_target
export build top seconds
echo "fuzzing each target for ${seconds}s, ${parallel} at a time"
printf '%s\n' $targets | xargs -P "$parallel" -I{} bash -c 'run_target {}'

cmake --build "$build" -j"$(nproc)" --target kho_tests >/dev/null || exit 1
echo "rapidcheck model tests, RC_PARAMS=max_success=${KHO_RC_SUCCESS:-2000}"
RC_PARAMS="max_success=${KHO_RC_SUCCESS:-2000}" "$build/tests/kho_tests" --gtest_filter='*Model*:*Restore*:*Memblock*' \
  --gtest_brief=1 2>&1 | tail -3
