#!/usr/bin/env bash
# Every test: a Release build (what users build first: library, CLI, tests, with the
# optimizer's warnings), then the same suite again under ASan+UBSan. Warnings are
# errors in both (KHO_WERROR; off by default for users). Prints the configure, build
# and test wall time of each pass.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
jobs=$(nproc)
# Ninja for a new build tree (an existing one keeps the generator it was made with).
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
timings=()
timed() {  # LABEL COMMAND...: runs it, records its wall time
  local label=$1 t0=$SECONDS; shift
  "$@"
  timings+=("$(printf '%-28s %5d s' "$label" $((SECONDS - t0)))")
}
run_suite() {
  local name=$1 build=$2; shift 2
  timed "$name: configure" cmake -S "$top" -B "$build" "$@" >/dev/null
  timed "$name: build" cmake --build "$build" -j"$jobs"
  timed "$name: test" ctest --test-dir "$build" -j"$jobs" --output-on-failure --timeout 900
}
start=$SECONDS
run_suite release "$top/build" -DCMAKE_BUILD_TYPE=Release -DKHO_WERROR=ON
# Sanitized pass: fewer rapidcheck cases, the same properties. Line tables only (-g1):
# enough for ASan's and UBSan's reports to name file and line, at a fraction of full
# debug info's compile time.
RC_PARAMS="${RC_PARAMS_SANITIZE:-max_success=40}" \
  run_suite sanitize "$top/build-sanitize" -DCMAKE_BUILD_TYPE=Debug -DKHO_SANITIZE=ON -DKHO_WERROR=ON \
    -DKHO_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DCMAKE_C_FLAGS_DEBUG="-O1 -g1"
printf '%s\n' "${timings[@]}"
echo "all tests passed in $((SECONDS - start)) s"
